//! GatewayClass, ReferenceGrant, and the stand-ins for what Kubernetes itself provides:
//! Service, Secret, Namespace, plus LoadBalancerIPPool.

use super::{duration, object_ref, one_of};
use crate::decode::{Cx, Table, Value};
use crate::raw::{
    Document, GatewayClass, GrantFrom, GrantTo, IpPool, Meta, Namespace, ReferenceGrant, Secret,
    Service,
};
use crate::validate;
use gatehouse_model::backend::ProxyVersion;
use gatehouse_model::backend::{
    Endpoint, HealthCheck, HealthCheckKind, OutlierDetection, ServicePort,
};
use gatehouse_model::hostname::Hostname;
use gatehouse_model::snapshot::IpBlock;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub(super) fn gateway_class(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let controller_name = t.req_str(cx, "controllerName");
    let description = t.opt_str(cx, "description");
    let has_parameters_ref = t
        .get("parametersRef")
        .and_then(|v| object_ref(cx, &v, "", true))
        .is_some();
    t.finish(cx);
    if let Some(controller_name) = controller_name {
        doc.gateway_classes.push(GatewayClass {
            meta,
            controller_name,
            description,
            has_parameters_ref,
        });
    }
}

pub(super) fn reference_grant(
    cx: &mut Cx<'_>,
    mut t: Table<'_, '_>,
    meta: Meta,
    doc: &mut Document,
) {
    let mut from = Vec::new();
    for v in t
        .req(cx, "from")
        .and_then(|v| non_empty_array(cx, &v, 16))
        .unwrap_or_default()
    {
        let Some(mut f) = v.table(cx) else { continue };
        let group = f.req_str(cx, "group");
        let kind = f.req_str(cx, "kind");
        let namespace = f.req(cx, "namespace").and_then(|v| {
            let ns = v.string(cx)?;
            validate::namespace_name(&ns)
                .map_err(|e| v.error(cx, e))
                .ok()?;
            Some(ns)
        });
        f.finish(cx);
        if let (Some(group), Some(kind), Some(namespace)) = (group, kind, namespace) {
            from.push(GrantFrom {
                group,
                kind,
                namespace,
            });
        }
    }
    let mut to = Vec::new();
    for v in t
        .req(cx, "to")
        .and_then(|v| non_empty_array(cx, &v, 16))
        .unwrap_or_default()
    {
        let Some(mut f) = v.table(cx) else { continue };
        let group = f.req_str(cx, "group");
        let kind = f.req_str(cx, "kind");
        let name = f.opt_str(cx, "name");
        f.finish(cx);
        if let (Some(group), Some(kind)) = (group, kind) {
            to.push(GrantTo { group, kind, name });
        }
    }
    t.finish(cx);
    doc.reference_grants.push(ReferenceGrant { meta, from, to });
}

fn non_empty_array<'a, 'i>(
    cx: &mut Cx<'_>,
    v: &Value<'a, 'i>,
    max: usize,
) -> Option<Vec<Value<'a, 'i>>> {
    let items = v.array_max(cx, max)?;
    if items.is_empty() {
        v.error(cx, "must have at least one entry");
    }
    Some(items)
}

pub(super) fn service(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let mut ports: Vec<ServicePort> = Vec::new();
    for v in t
        .req(cx, "ports")
        .and_then(|v| non_empty_array(cx, &v, 64))
        .unwrap_or_default()
    {
        let Some(mut p) = v.table(cx) else { continue };
        let name = p.opt_str(cx, "name");
        let port = p.req(cx, "port").and_then(|v| v.port(cx));
        let target_port = p.get("targetPort").and_then(|v| v.port(cx));
        let app_protocol = p.opt_str(cx, "appProtocol");
        if let Some(v) = p.get("protocol") {
            one_of(cx, &v, &["TCP"]);
        }
        p.finish(cx);
        let Some(port) = port else { continue };
        if ports.iter().any(|q| q.port == port) {
            v.error(cx, format!("port {port} is listed twice"));
            continue;
        }
        if name.is_some() && ports.iter().any(|q| q.name == name) {
            v.error(
                cx,
                format!("port name \"{}\" is listed twice", name.unwrap_or_default()),
            );
            continue;
        }
        ports.push(ServicePort {
            name,
            port,
            target_port: target_port.unwrap_or(port),
            app_protocol,
        });
    }
    let mut endpoints = Vec::new();
    if let Some(list) = t.get("endpoints").and_then(|v| v.strings(cx)) {
        for (s, v) in list {
            match endpoint(&s) {
                Ok(e) => endpoints.push(e),
                Err(msg) => v.error(cx, msg),
            }
        }
    }
    let health_check = t.get("healthCheck").and_then(|v| health_check(cx, &v));
    let outlier_detection = t
        .get("outlierDetection")
        .and_then(|v| outlier_detection(cx, &v));
    let proxy_protocol = t
        .get("proxyProtocol")
        .and_then(|v| one_of(cx, &v, &["v1", "v2"]))
        .map(|v| {
            if v == "v1" {
                ProxyVersion::V1
            } else {
                ProxyVersion::V2
            }
        });
    t.finish(cx);
    doc.services.push(Service {
        meta,
        ports,
        endpoints,
        health_check,
        outlier_detection,
        proxy_protocol,
    });
}

/// An endpoint: an IP address or DNS name, optionally with `:port` (`[v6]:port` for IPv6).
pub(crate) fn endpoint(s: &str) -> Result<Endpoint, String> {
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(addr) = unbracketed.parse::<IpAddr>() {
        return Ok(Endpoint::Ip { addr, port: None });
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(format!(
                "endpoint \"{s}\": port must be between 1 and 65535"
            ));
        }
        return Ok(Endpoint::Ip {
            addr: sa.ip(),
            port: Some(sa.port()),
        });
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, Some(port)),
            _ => {
                return Err(format!(
                    "endpoint \"{s}\": port must be between 1 and 65535"
                ));
            }
        },
        None => (s, None),
    };
    let lower = host.to_ascii_lowercase();
    match Hostname::parse(&lower) {
        Ok(h) if !h.is_wildcard() => Ok(Endpoint::Dns { name: lower, port }),
        _ => Err(format!(
            "endpoint \"{s}\" is not an IP address, a DNS name, or either with \":port\""
        )),
    }
}

fn health_check(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<HealthCheck> {
    let mut t = v.table(cx)?;
    let kind = match t
        .get("type")
        .and_then(|v| one_of(cx, &v, &["HTTP", "TCP"]))
        .as_deref()
    {
        Some("TCP") => HealthCheckKind::Tcp,
        _ => HealthCheckKind::Http,
    };
    let path = match t.get("path") {
        Some(v) => v
            .string(cx)
            .filter(|p| validate::path_value(p).map_err(|e| v.error(cx, e)).is_ok()),
        None => Some("/".to_string()),
    };
    let interval = t
        .get("interval")
        .and_then(|v| positive_duration(cx, &v))
        .unwrap_or(Duration::from_secs(5));
    let timeout = t
        .get("timeout")
        .and_then(|v| positive_duration(cx, &v))
        .unwrap_or(Duration::from_secs(1));
    let unhealthy = t
        .get("unhealthyThreshold")
        .and_then(|v| v.int_in(cx, 1, 100))
        .unwrap_or(3);
    let healthy = t
        .get("healthyThreshold")
        .and_then(|v| v.int_in(cx, 1, 100))
        .unwrap_or(2);
    t.finish(cx);
    Some(HealthCheck {
        kind,
        path: path?,
        interval,
        timeout,
        unhealthy_threshold: unhealthy as u32,
        healthy_threshold: healthy as u32,
    })
}

fn positive_duration(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Duration> {
    let d = duration(cx, v)?;
    if d.is_zero() {
        v.error(cx, "must be greater than 0s");
        return None;
    }
    Some(d)
}

fn outlier_detection(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<OutlierDetection> {
    let mut t = v.table(cx)?;
    let errors = t
        .get("consecutiveErrors")
        .and_then(|v| v.int_in(cx, 1, 1000))
        .unwrap_or(5);
    let ejection = t
        .get("ejectionTime")
        .and_then(|v| positive_duration(cx, &v))
        .unwrap_or(Duration::from_secs(30));
    t.finish(cx);
    Some(OutlierDetection {
        consecutive_errors: errors as u32,
        ejection_time: ejection,
    })
}

pub(super) fn secret(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let secret_type = t
        .opt_str(cx, "type")
        .unwrap_or_else(|| "kubernetes.io/tls".to_string());
    let base = cx
        .src
        .path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let mut file = |t: &mut Table<'_, '_>, key: &'static str| {
        let v = if secret_type == "kubernetes.io/tls" {
            t.req(cx, key)
        } else {
            t.get(key)
        }?;
        let s = v.string(cx)?;
        if s.is_empty() {
            v.error(cx, "must not be empty");
            return None;
        }
        Some(base.join(s))
    };
    let cert_file = file(&mut t, "certFile");
    let key_file = file(&mut t, "keyFile");
    let ca_file = super::policy::path_value(cx, &mut t, "caFile");
    t.finish(cx);
    doc.secrets.push(Secret {
        meta,
        secret_type,
        cert_file,
        key_file,
        ca_file,
    });
}

pub(super) fn namespace(cx: &mut Cx<'_>, t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    t.finish(cx);
    doc.namespaces.push(Namespace { meta });
}

pub(super) fn ip_pool(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let mut blocks = Vec::new();
    for v in t
        .req(cx, "blocks")
        .and_then(|v| non_empty_array(cx, &v, 1024))
        .unwrap_or_default()
    {
        let Some(mut b) = v.table(cx) else { continue };
        let cidr = b.get("cidr");
        let start = b.get("start");
        let stop = b.get("stop");
        b.finish(cx);
        match (cidr, start, stop) {
            (Some(c), None, None) => {
                if let Some(s) = c.str(cx) {
                    match s.parse::<ipnet::IpNet>() {
                        Ok(net) => blocks.push(IpBlock::Cidr(net)),
                        Err(_) => c.error(
                            cx,
                            format!("\"{s}\" is not a CIDR such as \"192.0.2.64/28\""),
                        ),
                    }
                }
            }
            (None, Some(a), Some(z)) => {
                let ip = |cx: &mut Cx<'_>, v: &Value<'_, '_>| {
                    let s = v.str(cx)?;
                    s.parse::<IpAddr>()
                        .map_err(|_| v.error(cx, format!("\"{s}\" is not an IP address")))
                        .ok()
                };
                if let (Some(start), Some(stop)) = (ip(cx, &a), ip(cx, &z)) {
                    if start.is_ipv4() != stop.is_ipv4() || start > stop {
                        v.error(
                            cx,
                            "start and stop must be of one address family, with start <= stop",
                        );
                    } else {
                        blocks.push(IpBlock::Range { start, stop });
                    }
                }
            }
            _ => v.error(cx, "a block has either `cidr`, or both `start` and `stop`"),
        }
    }
    t.finish(cx);
    doc.pools.push(IpPool { meta, blocks });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_ips_or_dns_names_with_optional_port() {
        assert_eq!(
            endpoint("10.0.0.1"),
            Ok(Endpoint::Ip {
                addr: "10.0.0.1".parse().unwrap(),
                port: None
            })
        );
        assert_eq!(
            endpoint("10.0.0.1:8080"),
            Ok(Endpoint::Ip {
                addr: "10.0.0.1".parse().unwrap(),
                port: Some(8080)
            })
        );
        assert_eq!(
            endpoint("[2001:db8::1]:80"),
            Ok(Endpoint::Ip {
                addr: "2001:db8::1".parse().unwrap(),
                port: Some(80)
            })
        );
        assert_eq!(
            endpoint("2001:db8::1"),
            Ok(Endpoint::Ip {
                addr: "2001:db8::1".parse().unwrap(),
                port: None
            })
        );
        assert_eq!(
            endpoint("Backend.local:9000"),
            Ok(Endpoint::Dns {
                name: "backend.local".into(),
                port: Some(9000)
            })
        );
        assert_eq!(
            endpoint("[::1]"),
            Ok(Endpoint::Ip {
                addr: "::1".parse().unwrap(),
                port: None
            })
        );
        assert!(endpoint("backend.local:0").is_err());
        assert!(endpoint("not a host").is_err());
        assert!(endpoint("*.x.com").is_err());
    }
}
