//! Schedule tests on Tokio's paused clock with a recording [`LinkSender`]: each recorded frame
//! carries the virtual time it was sent at, so bursts, refreshes and withdrawals are checked to
//! the millisecond without waiting.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const MAC_ETH1: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const MAC_ETH2: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
const VIP4_B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101));
const VIP6_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const VIP6: IpAddr = IpAddr::V6(VIP6_ADDR);

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    at: Duration,
    interface: String,
    frame: Vec<u8>,
}

/// Records every frame with its virtual send time; `eth1` and `eth2` exist, `down0` exists but
/// refuses to send, anything else is unknown.
struct Recorder {
    start: Instant,
    sent: Mutex<Vec<Sent>>,
}

impl Recorder {
    fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    /// Send times in milliseconds, for one interface.
    fn times_ms(&self, interface: &str) -> Vec<u128> {
        self.sent()
            .iter()
            .filter(|sent| sent.interface == interface)
            .map(|sent| sent.at.as_millis())
            .collect()
    }
}

impl LinkSender for Recorder {
    fn send(&self, interface: &str, frame: &[u8]) -> Result<(), AnnounceError> {
        self.mac(interface)?;
        if interface == "down0" {
            return Err(AnnounceError::Io {
                interface: interface.into(),
                action: "sending",
                what: frames::describe(frame),
                error: std::io::Error::from_raw_os_error(100),
            });
        }
        lock(&self.sent).push(Sent {
            at: self.start.elapsed(),
            interface: interface.into(),
            frame: frame.to_vec(),
        });
        Ok(())
    }

    fn mac(&self, interface: &str) -> Result<[u8; 6], AnnounceError> {
        match interface {
            "eth1" | "down0" => Ok(MAC_ETH1),
            "eth2" => Ok(MAC_ETH2),
            _ => Err(AnnounceError::NoSuchInterface {
                interface: interface.into(),
            }),
        }
    }
}

fn settings(garp_count: u32, garp_interval_ms: u64, refresh_ms: u64) -> Announce {
    Announce {
        garp_count,
        garp_interval: Duration::from_millis(garp_interval_ms),
        refresh_interval: Duration::from_millis(refresh_ms),
        ..Announce::default()
    }
}

fn announcer(recorder: &Arc<Recorder>, settings: Announce) -> Schedule {
    Schedule::new(Arc::clone(recorder) as Arc<dyn LinkSender>, settings)
}

/// Sleeps until `ms` after the recorder was created, on the paused clock.
async fn at_ms(recorder: &Recorder, ms: u64) {
    tokio::time::sleep_until(recorder.start + Duration::from_millis(ms)).await;
}

fn count(announcer: &Schedule, vip: IpAddr, interface: &str, reason: Reason) -> Counts {
    let key = CounterKey {
        vip,
        interface: interface.into(),
        reason,
    };
    announcer.counts().get(&key).copied().unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn up_burst_sends_garp_count_frames_garp_interval_apart() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(3, 1000, 0));
    assert!(announcer.announce_up(VIP4, "eth1").unwrap());
    at_ms(&recorder, 10_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000, 2000]);
    assert_eq!(
        count(&announcer, VIP4, "eth1", Reason::Up),
        Counts { sent: 3, errors: 0 }
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_sends_one_frame_every_refresh_interval() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(2, 1000, 10_000));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 35_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000, 10_000, 20_000, 30_000]);
    assert_eq!(count(&announcer, VIP4, "eth1", Reason::Up).sent, 2);
    assert_eq!(count(&announcer, VIP4, "eth1", Reason::Refresh).sent, 3);
}

#[tokio::test(start_paused = true)]
async fn zero_refresh_interval_disables_refresh() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(3, 500, 0));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 24 * 3600 * 1000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 500, 1000]);
    assert_eq!(
        count(&announcer, VIP4, "eth1", Reason::Refresh),
        Counts::default()
    );
}

#[tokio::test(start_paused = true)]
async fn link_up_sends_a_burst_for_vips_on_that_interface_only() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(3, 1000, 0));
    announcer.announce_up(VIP4, "eth1").unwrap();
    announcer.announce_up(VIP4_B, "eth2").unwrap();
    at_ms(&recorder, 5000).await;

    assert_eq!(announcer.link_up("eth1"), 1);
    assert_eq!(announcer.link_up("eth7"), 0);
    at_ms(&recorder, 20_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000, 2000, 5000, 6000, 7000]);
    assert_eq!(recorder.times_ms("eth2"), [0, 1000, 2000]);
    assert_eq!(count(&announcer, VIP4, "eth1", Reason::LinkUp).sent, 3);
    assert_eq!(count(&announcer, VIP4_B, "eth2", Reason::LinkUp).sent, 0);
}

#[tokio::test(start_paused = true)]
async fn link_up_restarts_the_refresh_clock() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(1, 1000, 10_000));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 4000).await;
    announcer.link_up("eth1");
    at_ms(&recorder, 25_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 4000, 14_000, 24_000]);
}

#[tokio::test(start_paused = true)]
async fn link_up_during_the_up_burst_follows_it() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(2, 1000, 0));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 500).await;
    announcer.link_up("eth1");
    announcer.link_up("eth1"); // coalesced with the first
    at_ms(&recorder, 10_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000, 1000, 2000]);
    assert_eq!(count(&announcer, VIP4, "eth1", Reason::LinkUp).sent, 2);
}

#[tokio::test(start_paused = true)]
async fn withdraw_stops_further_frames() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(3, 1000, 5000));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 1500).await;

    assert!(announcer.withdraw(VIP4));
    assert!(!announcer.withdraw(VIP4));
    assert_eq!(announcer.link_up("eth1"), 0);
    at_ms(&recorder, 60_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000]);
    assert!(announcer.announced().is_empty());
    // Counters survive the withdrawal, as Prometheus counters do.
    assert_eq!(count(&announcer, VIP4, "eth1", Reason::Up).sent, 2);
}

#[tokio::test(start_paused = true)]
async fn withdraw_all_and_drop_stop_every_vip() {
    let recorder = Recorder::new();
    let first = announcer(&recorder, settings(1, 1000, 1000));
    first.announce_up(VIP4, "eth1").unwrap();
    first.announce_up(VIP6, "eth1").unwrap();
    let second = announcer(&recorder, settings(1, 1000, 1000));
    second.announce_up(VIP4_B, "eth2").unwrap();
    at_ms(&recorder, 500).await;

    first.withdraw_all();
    drop(second);
    at_ms(&recorder, 10_000).await;

    assert_eq!(recorder.sent().len(), 3, "only the three up frames at t=0");
}

#[tokio::test(start_paused = true)]
async fn ipv4_vip_gets_gratuitous_arp_and_ipv6_vip_gets_unsolicited_na() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(1, 1000, 0));
    announcer.announce_up(VIP4, "eth1").unwrap();
    announcer.announce_up(VIP6, "eth2").unwrap();
    at_ms(&recorder, 100).await;

    let sent = recorder.sent();
    let arp = &sent.iter().find(|s| s.interface == "eth1").unwrap().frame;
    let na = &sent.iter().find(|s| s.interface == "eth2").unwrap().frame;
    #[rustfmt::skip]
    let expected_arp: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 100,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 100,
    ];
    assert_eq!(arp.as_slice(), expected_arp);
    // The NA bytes themselves are pinned in `frames`; here: the right builder, eth2's MAC.
    assert_eq!(*na, frames::unsolicited_na(MAC_ETH2, VIP6_ADDR));
    assert_eq!(
        &na[..14],
        [0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd]
    );
    assert_eq!(na[54], 136, "ICMPv6 type: neighbour advertisement");
}

#[tokio::test(start_paused = true)]
async fn send_errors_are_counted_and_the_schedule_keeps_going() {
    let recorder = Recorder::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let announcer = announcer(&recorder, settings(2, 1000, 10_000)).with_observer(move |event| {
        lock(&seen).push((
            event.vip,
            event.interface.to_owned(),
            event.reason,
            event.result.map_err(ToString::to_string),
        ));
    });
    announcer.announce_up(VIP4, "down0").unwrap();
    announcer.announce_up(VIP6, "missing9").unwrap();
    at_ms(&recorder, 10_500).await;

    assert_eq!(
        count(&announcer, VIP4, "down0", Reason::Up),
        Counts { sent: 0, errors: 2 }
    );
    assert_eq!(
        count(&announcer, VIP4, "down0", Reason::Refresh),
        Counts { sent: 0, errors: 1 }
    );
    assert_eq!(
        count(&announcer, VIP6, "missing9", Reason::Refresh).errors,
        1
    );
    let events = lock(&events).clone();
    assert_eq!(events.len(), 6);
    assert!(events.contains(&(
        VIP4,
        "down0".to_owned(),
        Reason::Refresh,
        Err("sending a gratuitous ARP on down0: Network is down".to_owned())
    )));
    assert!(events.contains(&(
        VIP6,
        "missing9".to_owned(),
        Reason::Up,
        Err("no network interface named \"missing9\"".to_owned())
    )));
}

#[tokio::test(start_paused = true)]
async fn observer_sees_every_sent_frame_with_its_labels() {
    let recorder = Recorder::new();
    let labels = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&labels);
    let announcer = announcer(&recorder, settings(2, 1000, 5000)).with_observer(move |event| {
        assert!(event.result.is_ok());
        lock(&seen).push(format!(
            "{} {} {}",
            event.vip, event.interface, event.reason
        ));
    });
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 3000).await;
    announcer.link_up("eth1");
    at_ms(&recorder, 5500).await;

    assert_eq!(
        *lock(&labels),
        [
            "192.0.2.100 eth1 up",
            "192.0.2.100 eth1 up",
            "192.0.2.100 eth1 link_up",
            "192.0.2.100 eth1 link_up",
        ]
    );
    at_ms(&recorder, 8500).await;
    assert_eq!(lock(&labels).last().unwrap(), "192.0.2.100 eth1 refresh");
}

#[tokio::test(start_paused = true)]
async fn announce_up_again_on_the_same_interface_changes_nothing() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(2, 1000, 0));
    assert!(announcer.announce_up(VIP4, "eth1").unwrap());
    at_ms(&recorder, 5000).await;
    assert!(!announcer.announce_up(VIP4, "eth1").unwrap());
    at_ms(&recorder, 10_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000]);
    assert_eq!(announcer.announced(), [(VIP4, "eth1".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn announce_up_on_another_interface_moves_the_vip() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(2, 1000, 3000));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 1500).await;
    assert!(announcer.announce_up(VIP4, "eth2").unwrap());
    at_ms(&recorder, 5000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 1000]);
    assert_eq!(recorder.times_ms("eth2"), [1500, 2500, 4500]);
    assert_eq!(announcer.announced(), [(VIP4, "eth2".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn enabling_refresh_by_reload_starts_refreshing() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(1, 1000, 0));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 4000).await;
    announcer.set_settings(settings(1, 1000, 10_000));
    at_ms(&recorder, 25_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 10_000, 20_000]);
}

#[tokio::test(start_paused = true)]
async fn reload_with_the_same_refresh_interval_does_not_postpone_refresh() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(1, 1000, 10_000));
    announcer.announce_up(VIP4, "eth1").unwrap();
    for ms in (3000..30_000).step_by(3000) {
        at_ms(&recorder, ms).await;
        // A reload that changes only the burst, every 3 s.
        announcer.set_settings(settings(1 + (ms / 3000) as u32 % 2, 1000, 10_000));
    }
    at_ms(&recorder, 31_000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 10_000, 20_000, 30_000]);
}

#[tokio::test(start_paused = true)]
async fn new_burst_settings_apply_to_the_next_burst() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(1, 1000, 0));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 1000).await;
    announcer.set_settings(settings(3, 200, 0));
    at_ms(&recorder, 2000).await;
    announcer.link_up("eth1");
    at_ms(&recorder, 5000).await;

    assert_eq!(recorder.times_ms("eth1"), [0, 2000, 2200, 2400]);
    assert_eq!(announcer.settings(), settings(3, 200, 0));
}

#[tokio::test(start_paused = true)]
async fn zero_garp_count_sends_no_burst_but_still_refreshes() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, settings(0, 1000, 5000));
    announcer.announce_up(VIP4, "eth1").unwrap();
    at_ms(&recorder, 11_000).await;

    assert_eq!(recorder.times_ms("eth1"), [5000, 10_000]);
}

#[test]
fn announce_up_outside_a_runtime_is_an_error_not_a_panic() {
    let recorder = Recorder::new();
    let announcer = announcer(&recorder, Announce::default());
    assert!(matches!(
        announcer.announce_up(VIP4, "eth1"),
        Err(AnnounceError::NoRuntime)
    ));
}

#[test]
fn reason_labels_match_the_metric() {
    let labels: Vec<_> = Reason::ALL.iter().map(|r| r.to_string()).collect();
    assert_eq!(labels, ["up", "refresh", "link_up"]);
}
