//! High availability end to end: two boxes share a Gateway's addresses through keepalived,
//! with `[announce] mode = "keepalived"` in gatehouse (it writes keepalived's include file
//! and reloads it; keepalived adds and announces the addresses). A client that GETs each
//! address over a new connection every 10 ms is answered by the other box within one second
//! (the bound) when, on the box holding them,
//!
//! 1. gatehouse is killed (SIGKILL): keepalived's readiness check fails at once;
//! 2. keepalived is stopped (SIGTERM): it hands over with a priority-0 advert;
//! 3. the link goes down (`ip link set down`): the other box misses the adverts;
//!
//! each five times, the failed box restored after each takeover. Bringing the
//! higher-priority box back moves nothing with `preempt = false` (the default), and moves
//! the addresses back within a one-second gap with `preempt = true`. At rest the BACKUP box
//! stays BACKUP (no split brain), no ARP request of the client is answered from two MACs,
//! and after a takeover only the new holder answers ARP. The gaps are printed
//! (`--nocapture`); `GATEHOUSE_HA_TIMELINE=1` prints each move's keepalived lines and
//! requests on one time line, `GATEHOUSE_HA_LOGS=<folder>` keeps every log there.
//!
//! Topology (`gatehouse_tests::vips::Net`): boxes `a` (192.0.2.1 and 2001:db8::1, priority
//! 150) and `b` (.2, ::2, priority 100), client `c` (.3, ::3), each in a network namespace on
//! a bridge; each box runs `gatehouse run`, a `gatehouse echo` backend named after it and
//! `keepalived --vrrp` with unicast peers: one VRRPv3 instance per family. VIPs 192.0.2.100
//! and 2001:db8::100, port 80. The client and the frame capture are this test binary re-run
//! inside `c`.
//!
//! Needs root, `ip`, `curl`, `sysctl` and keepalived (Debian's package); without them it
//! prints "skipped: <reason>" and passes, unless `CI` is set. Build gatehouse first
//! (`cargo build -p gatehouse`). Every wait has a deadline; it takes about 45 s.

use gatehouse_tests::ha::client::{Answer, Client, TIMEOUT, ms, now_us};
use gatehouse_tests::ha::{self, Exchange, HaBox, HaSettings, VIPS, arp_exchanges};
use gatehouse_tests::vips::{
    self, Capture, DEADLINE, IFACE, Net, ROLE, VIP4, VIP6, learn_from_announcements, mac_text,
    parse_mac, skip_without, sysctl, wait_until,
};
use std::time::{Duration, Instant};

/// The bound on a takeover, as the client sees it.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(1);
/// How often each way of failing is tried.
const REPEAT: usize = 5;
/// How long the address must stay put when a box comes back without preemption.
const NOPREEMPT_WATCH: Duration = Duration::from_secs(3);
/// How long the BACKUP box must stay BACKUP at rest at the start.
const SPLIT_BRAIN_WATCH: Duration = Duration::from_secs(1);
/// Consecutive answers from the holder that make the client's view settled.
const SETTLED: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    KillGatehouse,
    StopKeepalived,
    LinkDown,
}

impl Failure {
    fn describe(self) -> &'static str {
        match self {
            Failure::KillGatehouse => "gatehouse killed (SIGKILL) on the master",
            Failure::StopKeepalived => "keepalived stopped (SIGTERM) on the master",
            Failure::LinkDown => "the master's link down",
        }
    }
}

/// What the client saw of one VIP around one move.
#[derive(Clone, Copy, Debug)]
struct Move {
    /// From the event to the first answer from the new holder.
    first_ms: f64,
    /// The longest time without any successful answer, from the event to that first answer.
    outage_ms: f64,
    /// Requests started from the event to that first answer that failed.
    failed: usize,
}

/// One [`Move`] per VIP, in the order of [`VIPS`].
type Moves = [Move; 2];

const MS: f64 = 1000.0;

/// Both boxes, the client and the capture; `holder` is the index of the box with the VIPs.
struct Lab {
    boxes: [HaBox; 2],
    client: Client,
    capture: Capture,
    c: vips::Host,
    holder: usize,
    /// (instant, wall clock) taken together, to place the client's times among instants.
    clock: (Instant, u64),
}

impl Lab {
    fn instant(&self, us: u64) -> Instant {
        let (at, base) = self.clock;
        if us >= base {
            at + Duration::from_micros(us - base)
        } else {
            at - Duration::from_micros(base - us)
        }
    }

    /// Waits until the holder has answered [`SETTLED`] requests in a row for each VIP since
    /// `since`, its `/status` shows MASTER and the other's BACKUP, and
    /// `gatehouse_vip_active` agrees.
    fn settle(&self, since: u64) {
        let (holder, other) = (&self.boxes[self.holder], &self.boxes[1 - self.holder]);
        for vip in VIPS {
            let settled = wait_until(DEADLINE, || {
                let answers = self.client.answers_since(vip, since);
                answers.len() >= SETTLED
                    && answers[answers.len() - SETTLED..]
                        .iter()
                        .all(|a| a.from(&holder.echo))
            });
            assert!(
                settled,
                "{vip} was not answered by {} {SETTLED} times in a row; last lines:\n{}",
                holder.echo,
                self.client.log_tail(30)
            );
            let roles = wait_until(DEADLINE, || {
                holder.status_role(vip).as_deref() == Some("MASTER")
                    && other.status_role(vip).as_deref() == Some("BACKUP")
                    && holder.vip_active(vip).as_deref() == Some("1")
                    && other.vip_active(vip).as_deref() == Some("0")
            });
            assert!(
                roles,
                "/status and /metrics for {vip}: {} {:?} {:?}, {} {:?} {:?} (expected MASTER 1, BACKUP 0)",
                holder.name,
                holder.status_role(vip),
                holder.vip_active(vip),
                other.name,
                other.status_role(vip),
                other.vip_active(vip)
            );
        }
    }

    /// The first answer for `vip` from box `to` that ended after `event`.
    fn first_from(&self, vip: &str, event: u64, to: usize) -> Option<Answer> {
        self.client
            .answers_since(vip, event)
            .into_iter()
            .filter(|a| a.from(&self.boxes[to].echo))
            .min_by_key(|a| a.end)
    }

    /// Waits for the first answer from box `to` for each VIP after `event`, and measures.
    fn measure(&self, event: u64, to: usize, what: &str) -> Moves {
        let mut firsts = Vec::new();
        for vip in VIPS {
            let mut first = None;
            let found = wait_until(DEADLINE, || {
                first = self.first_from(vip, event, to);
                first.is_some()
            });
            assert!(
                found,
                "{what}: {} never answered {vip} within {DEADLINE:?}; client:\n{}\n{}",
                self.boxes[to].echo,
                self.client.log_tail(30),
                self.logs()
            );
            firsts.extend(first);
        }
        // Requests started before the last first answer end within their timeout.
        let last = firsts.iter().map(|a| a.end).max().unwrap_or(event);
        let done = last + u64::try_from(TIMEOUT.as_micros()).unwrap_or(0) + 50_000;
        std::thread::sleep(Duration::from_micros(done.saturating_sub(now_us())));
        let mut moves = Vec::new();
        for (vip, first) in VIPS.iter().zip(&firsts) {
            let all = self.client.answers(vip);
            let mut last_ok = event;
            let mut outage = 0.0f64;
            let mut oks: Vec<u64> = all
                .iter()
                .filter(|a| a.result.is_ok() && a.end > event && a.end <= first.end)
                .map(|a| a.end)
                .collect();
            oks.sort_unstable();
            for end in oks {
                outage = outage.max(ms(last_ok, end));
                last_ok = end;
            }
            let failed = all
                .iter()
                .filter(|a| a.result.is_err() && a.start >= event && a.start <= first.end)
                .count();
            moves.push(Move {
                first_ms: ms(event, first.end),
                outage_ms: outage,
                failed,
            });
        }
        [moves[0], moves[1]]
    }

    /// Fails the holder in `how`, measures the takeover by the other box and asserts it
    /// within [`TAKEOVER_WITHIN`], restores the failed box and waits until it is BACKUP
    /// (MASTER again when it preempts, then measuring that move too).
    fn failover(&mut self, how: Failure) -> (Moves, Option<Moves>) {
        let (old, new) = (self.holder, 1 - self.holder);
        let from_old = self.boxes[old].mark();
        let from_new = self.boxes[new].mark();
        let event = now_us();
        let old_box = &mut self.boxes[old];
        match how {
            Failure::KillGatehouse => {
                old_box.gh.kill();
            }
            Failure::StopKeepalived => {
                let log = old_box.keepalived.take().expect("keepalived runs").stop();
                assert!(
                    log.contains("Stopped Keepalived"),
                    "keepalived did not stop cleanly:\n{log}"
                );
            }
            Failure::LinkDown => link(old_box, "down"),
        }
        let took = self.measure(event, new, how.describe());
        let marks = if old == 0 {
            [from_old, from_new]
        } else {
            [from_new, from_old]
        };
        if std::env::var_os("GATEHOUSE_HA_TIMELINE").is_some() {
            eprintln!("{}", self.timeline(event, marks));
        }
        let (old_name, new_name) = (self.boxes[old].name.clone(), self.boxes[new].name.clone());
        for (vip, m) in VIPS.iter().zip(&took) {
            assert!(
                m.first_ms < TAKEOVER_WITHIN.as_secs_f64() * MS,
                "{}: {new_name} answered {vip} only {:.0} ms after the event (bound {TAKEOVER_WITHIN:?})\n{}",
                how.describe(),
                m.first_ms,
                self.timeline(event, marks)
            );
        }
        self.boxes[new].wait_state(from_new, "MASTER");
        let moved = wait_until(DEADLINE, || {
            self.boxes[new].holds() == Some(true) && self.boxes[old].holds() == Some(false)
        });
        assert!(
            moved,
            "after the takeover {new_name} should hold {VIPS:?} and {old_name} none"
        );
        let first4 = self
            .first_from(VIPS[0], event, new)
            .map_or(event, |a| a.end);
        let takeover = self.instant(first4);
        self.holder = new;
        self.check_arp_since(takeover);
        let restored = now_us();

        // Restore the failed box.
        let old_box = &mut self.boxes[old];
        match how {
            Failure::KillGatehouse => old_box.gh.start(),
            Failure::StopKeepalived => old_box.start_keepalived(),
            Failure::LinkDown => link(old_box, "up"),
        }
        let from = if how == Failure::StopKeepalived {
            0
        } else {
            from_old
        };
        let preempts =
            self.boxes[old].ha.preempt && self.boxes[old].ha.priority > self.boxes[new].ha.priority;
        let back = if preempts {
            self.boxes[old].wait_state(from, "MASTER");
            let moved = self.measure(restored, old, "preemption");
            self.holder = old;
            Some(moved)
        } else {
            self.boxes[old].wait_state(from, "BACKUP");
            None
        };
        self.settle(restored);
        if back.is_none() {
            // Nothing moved back: every answer since the takeover came from the new holder.
            for vip in VIPS {
                let first = self.first_from(vip, event, new).map_or(event, |a| a.end);
                let strays: Vec<Answer> = self
                    .client
                    .answers_since(vip, first)
                    .into_iter()
                    .filter(|a| a.result.is_ok() && !a.from(&self.boxes[new].echo))
                    .collect();
                assert!(
                    strays.is_empty(),
                    "answers for {vip} from {old_name} after {new_name} took over: {strays:?}"
                );
            }
        }
        (took, back)
    }

    /// Replies to the client's ARP requests since `takeover` come from the holder alone, and
    /// there is at least one (checked up to now, after waiting for a few requests).
    fn check_arp_since(&self, takeover: Instant) {
        let holder = parse_mac(&self.boxes[self.holder].host.mac);
        let answered = wait_until(DEADLINE, || {
            arp_exchanges(&self.capture, &self.c)
                .iter()
                .filter(|e| e.at >= takeover)
                .any(|e| e.replies.iter().any(|(_, mac)| *mac == holder))
        });
        assert!(
            answered,
            "no ARP reply from the new holder {} since the takeover",
            self.boxes[self.holder].host.mac
        );
        let others: Vec<String> = arp_exchanges(&self.capture, &self.c)
            .iter()
            .flat_map(|e| e.replies.clone())
            .filter(|(at, mac)| *at >= takeover && *mac != holder)
            .map(|(at, mac)| format!("{} at +{:?}", mac_text(&mac), at - takeover))
            .collect();
        assert!(
            others.is_empty(),
            "ARP replies for {VIP4} from others than the new holder {} after the takeover: {others:?}",
            self.boxes[self.holder].host.mac
        );
    }

    /// keepalived's lines on both boxes since `marks` and the client's answers from just
    /// before `event`, each at its time relative to `event`: what happened in a move.
    fn timeline(&self, event: u64, marks: [usize; 2]) -> String {
        let at = self.instant(event);
        let rel = |t: Instant| {
            if t >= at {
                (t - at).as_secs_f64() * MS
            } else {
                -(at - t).as_secs_f64() * MS
            }
        };
        let mut lines: Vec<(f64, String)> = Vec::new();
        for (b, from) in self.boxes.iter().zip(marks) {
            for (t, line) in b.keepalived.iter().flat_map(|k| k.lines_since(from)) {
                // Past keepalived's own "Sat Dec  5 17:13:06 2026: " prefix.
                let text = line.split_once(": ").map_or(line.as_str(), |(_, l)| l);
                lines.push((rel(t), format!("{} keepalived: {text}", b.name)));
            }
        }
        for vip in VIPS {
            for a in self.client.answers_since(vip, event.saturating_sub(30_000)) {
                let what = a.result.clone().unwrap_or_else(|e| format!("error: {e}"));
                let took = ms(a.start, a.end);
                lines.push((
                    ms(event, a.start),
                    format!("GET {vip} ({took:.0} ms): {what}"),
                ));
            }
        }
        lines.sort_by(|x, y| x.0.total_cmp(&y.0));
        lines
            .iter()
            .take(200)
            .map(|(t, l)| format!("{t:+8.1} ms  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn logs(&self) -> String {
        self.boxes
            .iter()
            .map(|b| {
                format!(
                    "--- {} keepalived:\n{}\n--- {} gatehouse:\n{}",
                    b.name,
                    b.keepalived.as_ref().map(|k| k.log()).unwrap_or_default(),
                    b.name,
                    b.gh.log()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Lab {
    /// With `GATEHOUSE_HA_LOGS=<folder>`, keeps every log there: keepalived's and
    /// gatehouse's of both boxes, and each request of the client.
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("GATEHOUSE_HA_LOGS") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("boxes.log"), self.logs());
        let _ = std::fs::write(dir.join("client.log"), self.client.log_tail(usize::MAX));
        eprintln!("logs kept in {}", dir.display());
    }
}

fn link(b: &HaBox, state: &str) {
    vips::ip(&["-n", &b.host.ns, "link", "set", &b.host.iface, state]);
}

/// No ARP request got replies from two different MACs.
fn assert_one_mac_per_request(exchanges: &[Exchange]) {
    let doubled: Vec<String> = exchanges
        .iter()
        .filter(|e| e.replies.iter().any(|(_, m)| *m != e.replies[0].1))
        .map(|e| {
            let macs: Vec<String> = e.replies.iter().map(|(_, m)| mac_text(m)).collect();
            format!("{macs:?}")
        })
        .collect();
    assert!(
        doubled.is_empty(),
        "ARP requests for {VIP4} answered by two MACs: {doubled:?}"
    );
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(title: &str, moves: &[Moves]) {
    for (i, vip) in VIPS.iter().enumerate() {
        let of_vip: Vec<Move> = moves.iter().map(|m| m[i]).collect();
        let list = |f: fn(&Move) -> f64| {
            of_vip
                .iter()
                .map(|m| format!("{:.0}", f(m)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let failed: Vec<usize> = of_vip.iter().map(|m| m.failed).collect();
        println!(
            "{title}, {vip}: gap median {:.0} ms, all [{}] ms; longest without an answer [{}] ms; failed requests {failed:?}",
            median(&of_vip.iter().map(|m| m.first_ms).collect::<Vec<_>>()),
            list(|m| m.first_ms),
            list(|m| m.outage_ms),
        );
    }
}

/// `first answer 12 ms / 34 ms` for the VIPs of `moves`.
fn brief(moves: &Moves) -> String {
    let ms = |f: fn(&Move) -> f64| {
        moves
            .iter()
            .map(|m| format!("{:.0}", f(m)))
            .collect::<Vec<_>>()
            .join("/")
    };
    format!(
        "first answer after {} ms, longest without one {} ms, failed {}",
        ms(|m| m.first_ms),
        ms(|m| m.outage_ms),
        moves
            .iter()
            .map(|m| m.failed.to_string())
            .collect::<Vec<_>>()
            .join("/")
    )
}

#[test]
fn keepalived_moves_the_vips_to_the_other_box_within_one_second() {
    if skip_without(&[("keepalived", "keepalived")]) {
        return;
    }
    let began = Instant::now();
    let net = Net::new(&["a", "b", "c"]);
    let (a, b, c) = (
        net.host("a").clone(),
        net.host("b").clone(),
        net.host("c").clone(),
    );
    learn_from_announcements(&c);
    // As in vips.rs: the bound measured is the pair's, not the client kernel's ARP locktime.
    sysctl(&c.ns, &[&format!("net.ipv4.neigh.{}.locktime=0", c.iface)]);
    // `ip link set down` (case 3) flushes an interface's IPv6 addresses unless
    // keep_addr_on_down is set, the box's own included: its VRRP peer would then be gone and
    // both boxes MASTER of the IPv6 VIP once the link is back. Keep them, as a cable pull
    // (carrier loss) would.
    for host in [&a, &b] {
        sysctl(
            &host.ns,
            &[
                "net.ipv6.conf.all.keep_addr_on_down=1",
                &format!("net.ipv6.conf.{}.keep_addr_on_down=1", host.iface),
            ],
        );
    }
    let capture = Capture::start(&c);

    let settings = |priority, peer: &vips::Host| HaSettings {
        priority,
        peers: [peer.v4.clone(), peer.v6.clone()],
        preempt: false,
    };
    let mut box_a = HaBox::new(&a, "a", settings(150, &b));
    let mut box_b = HaBox::new(&b, "b", settings(100, &a));
    let include = box_a.include();
    for expected in [
        format!("vrrp_instance {}", box_a.instance(VIP4)),
        format!("vrrp_instance {}", box_a.instance(VIP6)),
        "priority 150".into(),
        "nopreempt".into(),
        "advert_int 0.1".into(),
        format!("{VIP4}/32"),
        format!("{VIP6}/128"),
        format!("unicast_peer {{\n        {}\n", b.v4),
        format!("unicast_peer {{\n        {}\n", b.v6),
        "--hold 800ms".into(),
    ] {
        assert!(
            include.contains(&expected),
            "no {expected:?} in the include file gatehouse wrote:\n{include}"
        );
    }

    // a first, alone: it becomes MASTER; b then joins as BACKUP.
    box_a.start_keepalived();
    box_a.wait_state(0, "MASTER");
    box_b.start_keepalived();
    box_b.wait_state(0, "BACKUP");
    // At rest for longer than the master-down interval (three adverts and the skew, about
    // 0.36 s), b stays BACKUP: each of its instances hears a's adverts.
    let split = wait_until(SPLIT_BRAIN_WATCH, || {
        box_a.holds() != Some(true) || box_b.holds() != Some(false)
    });
    assert!(
        !split,
        "b did not stay BACKUP while a is MASTER (its instances must hear a's adverts):\n{}\n{}\n--- b's include file:\n{}\n--- b keepalived:\n{}",
        vips::addresses(&a.ns),
        vips::addresses(&b.ns),
        box_b.include(),
        box_b.keepalived().log()
    );
    let client = Client::start(&c, &VIPS);
    let start = now_us();
    let mut lab = Lab {
        boxes: [box_a, box_b],
        client,
        capture,
        c: c.clone(),
        holder: 0,
        clock: (Instant::now(), now_us()),
    };
    lab.settle(start);
    eprintln!("set up in {:?}", began.elapsed());

    // 1-3: each way of failing, five times; the VIPs alternate between the boxes.
    for how in [
        Failure::KillGatehouse,
        Failure::StopKeepalived,
        Failure::LinkDown,
    ] {
        let mut moves = Vec::new();
        for i in 0..REPEAT {
            let from = lab.boxes[lab.holder].name.clone();
            let (took, _) = lab.failover(how);
            eprintln!(
                "{} #{}: {from} -> {}: {} ({VIPS:?})",
                how.describe(),
                i + 1,
                lab.boxes[lab.holder].name,
                brief(&took)
            );
            moves.push(took);
        }
        report(how.describe(), &moves);
    }

    // 4a: no preemption. a (the higher priority) is back as BACKUP: the VIPs stay on b.
    if lab.holder == 0 {
        lab.failover(Failure::LinkDown);
    }
    let watch_from = now_us();
    let stayed = !wait_until(NOPREEMPT_WATCH, || {
        lab.boxes[0].holds() != Some(false) || lab.boxes[1].holds() != Some(true)
    });
    let strays: usize = VIPS
        .iter()
        .map(|vip| {
            lab.client
                .answers_since(vip, watch_from)
                .iter()
                .filter(|a| !a.from(&lab.boxes[1].echo))
                .count()
        })
        .sum();
    assert!(
        stayed && strays == 0,
        "with preempt = false the VIPs left b while a was back ({strays} answers not from b):\n{}",
        lab.logs()
    );
    println!(
        "no preemption: the VIPs stayed on b for {NOPREEMPT_WATCH:?} with a (priority 150) back"
    );

    // 4b: preemption. Reconfigured, a (BACKUP, priority 150) takes the VIPs back at once.
    let event = now_us();
    let from_a = lab.boxes[0].mark();
    for i in [1, 0] {
        let ha = HaSettings {
            preempt: true,
            ..lab.boxes[i].ha.clone()
        };
        lab.boxes[i].reconfigure(ha);
        assert!(
            !lab.boxes[i].include().contains("nopreempt"),
            "preempt = true, but the include file has nopreempt:\n{}",
            lab.boxes[i].include()
        );
    }
    lab.boxes[0].wait_state(from_a, "MASTER");
    let on_reload = lab.measure(event, 0, "preemption after the reload");
    lab.holder = 0;
    lab.settle(event);
    println!("preemption on the reload: a {}", brief(&on_reload));
    // Then a's link goes down and comes back: b takes over, a takes the VIPs back.
    let mut back = Vec::new();
    for i in 0..REPEAT {
        let (took, returned) = lab.failover(Failure::LinkDown);
        let returned = returned.expect("a preempts");
        eprintln!(
            "preemption #{}: b took over ({}); a back after its link came up: {}",
            i + 1,
            brief(&took),
            brief(&returned)
        );
        for (vip, m) in VIPS.iter().zip(&returned) {
            assert!(
                m.outage_ms < TAKEOVER_WITHIN.as_secs_f64() * MS,
                "preemption: {:.0} ms without an answer for {vip} (bound {TAKEOVER_WITHIN:?})",
                m.outage_ms
            );
        }
        back.push(returned);
    }
    report("preemption (a's link back up, a takes over)", &back);

    // Never two MACs for one ARP request, over the whole run.
    let exchanges = arp_exchanges(&lab.capture, &c);
    let replied = exchanges.iter().filter(|e| !e.replies.is_empty()).count();
    assert_one_mac_per_request(&exchanges);
    println!(
        "ARP: {} requests for {VIP4}, {replied} answered, none by two MACs",
        exchanges.len()
    );
    for vip in VIPS {
        let total = lab.client.answers(vip);
        println!(
            "client, {vip}: {} requests, {} failed",
            total.len(),
            total.iter().filter(|a| a.result.is_err()).count(),
        );
    }
    println!("whole test: {:?}", began.elapsed());

    let names = net.names();
    drop(lab);
    drop(net);
    let list = vips::ip(&["netns", "list"]);
    for name in names {
        assert!(
            !list
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&name)),
            "namespace {name} left behind: {list}"
        );
    }
}

/// The entry point of the child processes (the capture and the client); does nothing unless
/// `GATEHOUSE_VIPS_ROLE` is set.
#[test]
fn child_process_entry_point() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "capture" => vips::capture(&std::env::var(IFACE).expect("GATEHOUSE_VIPS_IFACE")),
        "client" => ha::client::client(),
        other => panic!("unknown role {other}"),
    }
}
