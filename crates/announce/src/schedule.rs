//! The announcement schedule: when each VIP's gratuitous ARP / unsolicited NA frames go out.
//!
//! The [`Announcer`](crate::Announcer) owns one [`Schedule`]. For every VIP it holds it calls
//! [`announce_up`](Schedule::announce_up) (after adding the address to the interface), and
//! [`withdraw`](Schedule::withdraw) before removing it, and
//! [`link_up`](Schedule::link_up) when an interface comes back. Each announced VIP gets one
//! Tokio task that:
//!
//! 1. sends a burst of `garp_count` frames, `garp_interval` apart (reason `up`);
//! 2. then sends one frame every `refresh_interval` (reason `refresh`; zero disables it), as
//!    keepalived's `garp_master_refresh` (one frame per refresh by default) and MetalLB's
//!    periodic GARP do: a refresh only keeps caches and switch FDBs warm, and the next one
//!    covers a lost frame;
//! 3. sends another burst when its interface comes back up (reason `link_up`), since frames
//!    sent while the link was down were lost and the peer may have moved the address.
//!
//! The refresh clock restarts from the last burst or refresh; a settings change that keeps the
//! refresh interval leaves it alone, so frequent reloads do not postpone refreshes.
//! [`withdraw`](Schedule::withdraw) aborts the task: nothing more is sent for that VIP (a
//! frame already being written on another worker thread may still complete).
//!
//! Frames are built by [`crate::frames`] from the interface's MAC address, read before every
//! frame so a changed MAC is picked up, and written by a [`LinkSender`], a trait so the whole
//! schedule is unit-tested without raw sockets. Every frame is counted per (VIP, interface,
//! reason) as sent or failed; [`Schedule::counts`] returns the totals and an optional
//! observer sees each frame as it happens (the daemon maps both to
//! `gatehouse_vip_announcements_total{vip, interface, reason}`). A failure is logged once when
//! a VIP starts failing and once when it recovers, never panics and never stops the schedule.

use crate::error::AnnounceError;
use crate::frames;
use gatehouse_model::settings::Announce;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Puts a complete Ethernet frame on a named interface, and reads that interface's MAC.
///
/// `send` is called from the announcer's Tokio tasks, so it must not block for long (the
/// AF_PACKET sender bounds its write with a short timeout).
pub trait LinkSender: Send + Sync {
    fn send(&self, interface: &str, frame: &[u8]) -> Result<(), AnnounceError>;
    fn mac(&self, interface: &str) -> Result<[u8; 6], AnnounceError>;
}

/// Why a frame was sent: the `reason` label of `gatehouse_vip_announcements_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The burst when the VIP comes up.
    Up,
    /// The periodic re-announcement.
    Refresh,
    /// The burst when the VIP's interface comes back up.
    LinkUp,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Up, Reason::Refresh, Reason::LinkUp];

    /// The label value: `up`, `refresh` or `link_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Up => "up",
            Reason::Refresh => "refresh",
            Reason::LinkUp => "link_up",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels frames are counted under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    pub vip: IpAddr,
    pub interface: String,
    pub reason: Reason,
}

/// Frames sent and frames that failed, for one [`CounterKey`]. Totals only grow; they are
/// kept after a VIP is withdrawn, like a Prometheus counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub errors: u64,
}

/// One frame the schedule tried to send, as passed to an observer.
#[derive(Debug)]
pub struct FrameEvent<'a> {
    pub vip: IpAddr,
    pub interface: &'a str,
    pub reason: Reason,
    pub result: Result<(), &'a AnnounceError>,
}

/// A callback run for every frame, after it was sent or failed.
pub type Observer = Arc<dyn Fn(&FrameEvent<'_>) + Send + Sync>;

/// Runs the announcement schedule of every announced VIP. Dropping it stops them all.
pub struct Schedule {
    shared: Arc<Shared>,
    settings: watch::Sender<Announce>,
    vips: Mutex<HashMap<IpAddr, VipTask>>,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("settings", &*self.settings.borrow())
            .field("announced", &self.announced())
            .finish_non_exhaustive()
    }
}

/// What the per-VIP tasks share with the announcer.
struct Shared {
    sender: Arc<dyn LinkSender>,
    counts: Mutex<BTreeMap<CounterKey, Counts>>,
    observer: OnceLock<Observer>,
}

/// A running per-VIP schedule; dropping it aborts the task.
struct VipTask {
    interface: String,
    link_up: Arc<Notify>,
    handle: JoinHandle<()>,
}

impl Drop for VipTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Schedule {
    pub fn new(sender: Arc<dyn LinkSender>, settings: Announce) -> Self {
        Schedule {
            shared: Arc::new(Shared {
                sender,
                counts: Mutex::new(BTreeMap::new()),
                observer: OnceLock::new(),
            }),
            settings: watch::Sender::new(settings),
            vips: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `observer` for every frame sent or failed, e.g. to increment a Prometheus counter.
    /// Only the first observer set on an announcer is kept.
    pub fn with_observer(self, observer: impl Fn(&FrameEvent<'_>) + Send + Sync + 'static) -> Self {
        if self.shared.observer.set(Arc::new(observer)).is_err() {
            tracing::debug!("VIP announcer already has an observer; keeping the first");
        }
        self
    }

    /// The schedule in force.
    pub fn settings(&self) -> Announce {
        self.settings.borrow().clone()
    }

    /// Replaces the schedule (after a reload). Running VIPs use the new burst settings for
    /// their next burst; a changed refresh interval restarts their refresh clock from the last
    /// announcement, an unchanged one leaves it alone.
    pub fn set_settings(&self, settings: Announce) {
        self.settings.send_if_modified(|current| {
            let changed = *current != settings;
            *current = settings;
            changed
        });
    }

    /// Starts announcing `vip` on `interface`: a burst now, then refreshes.
    ///
    /// Returns `Ok(false)` if it was already being announced on that interface (nothing
    /// changes, so a reconcile loop can call this for every VIP on every reload), `Ok(true)` if
    /// a schedule started, moving it from another interface if needed. Fails only outside a
    /// Tokio runtime.
    pub fn announce_up(&self, vip: IpAddr, interface: &str) -> Result<bool, AnnounceError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| AnnounceError::NoRuntime)?;
        let mut vips = lock(&self.vips);
        if let Some(task) = vips.get(&vip)
            && task.interface == interface
            && !task.handle.is_finished()
        {
            return Ok(false);
        }
        let link_up = Arc::new(Notify::new());
        let schedule = VipSchedule {
            shared: Arc::clone(&self.shared),
            vip,
            interface: interface.to_owned(),
            failing: false,
        };
        let handle = runtime.spawn(schedule.run(self.settings.subscribe(), Arc::clone(&link_up)));
        let task = VipTask {
            interface: interface.to_owned(),
            link_up,
            handle,
        };
        if let Some(old) = vips.insert(vip, task) {
            tracing::info!(%vip, from = %old.interface, to = interface, "VIP announcement moved to another interface");
        } else {
            tracing::debug!(%vip, interface, "VIP announcement started");
        }
        Ok(true)
    }

    /// `interface` came back up: every VIP announced on it sends a new burst. Returns how many
    /// VIPs that is. Several calls before a VIP's task runs give one burst.
    pub fn link_up(&self, interface: &str) -> usize {
        let vips = lock(&self.vips);
        let mut woken = 0;
        for task in vips.values().filter(|task| task.interface == interface) {
            task.link_up.notify_one();
            woken += 1;
        }
        if woken > 0 {
            tracing::info!(interface, vips = woken, "link up: re-announcing VIPs");
        }
        woken
    }

    /// Stops announcing `vip`. Returns whether it was being announced.
    pub fn withdraw(&self, vip: IpAddr) -> bool {
        let removed = lock(&self.vips).remove(&vip);
        if let Some(task) = &removed {
            tracing::debug!(%vip, interface = task.interface, "VIP announcement stopped");
        }
        removed.is_some()
    }

    /// Stops announcing every VIP (at shutdown).
    pub fn withdraw_all(&self) {
        // Drop the tasks outside the lock.
        let all = std::mem::take(&mut *lock(&self.vips));
        drop(all);
    }

    /// The VIPs being announced and their interfaces, sorted by address.
    pub fn announced(&self) -> Vec<(IpAddr, String)> {
        let mut list: Vec<_> = lock(&self.vips)
            .iter()
            .map(|(vip, task)| (*vip, task.interface.clone()))
            .collect();
        list.sort();
        list
    }

    /// Frames sent and failed so far, per VIP, interface and reason.
    pub fn counts(&self) -> BTreeMap<CounterKey, Counts> {
        lock(&self.shared.counts).clone()
    }
}

/// One VIP's schedule, owned by its task.
struct VipSchedule {
    shared: Arc<Shared>,
    vip: IpAddr,
    interface: String,
    /// Whether the last frame failed, so failures are logged at warn only when they start.
    failing: bool,
}

impl VipSchedule {
    async fn run(mut self, mut settings: watch::Receiver<Announce>, link_up: Arc<Notify>) {
        let current = settings.borrow_and_update().clone();
        let mut refresh_interval = current.refresh_interval;
        let mut last = Instant::now();
        self.burst(Reason::Up, &current).await;

        loop {
            let next_refresh = (!refresh_interval.is_zero()).then(|| last + refresh_interval);
            tokio::select! {
                () = sleep_until(next_refresh) => {
                    last = Instant::now();
                    self.send_one(Reason::Refresh);
                }
                () = link_up.notified() => {
                    last = Instant::now();
                    let current = settings.borrow().clone();
                    self.burst(Reason::LinkUp, &current).await;
                }
                changed = settings.changed() => {
                    if changed.is_err() {
                        return; // the announcer is gone
                    }
                    // `last` stays: an unchanged interval keeps its cadence, a changed one
                    // counts from the last announcement (and fires at once if already due).
                    refresh_interval = settings.borrow_and_update().refresh_interval;
                }
            }
        }
    }

    async fn burst(&mut self, reason: Reason, settings: &Announce) {
        for n in 0..settings.garp_count {
            if n > 0 {
                tokio::time::sleep(settings.garp_interval).await;
            }
            self.send_one(reason);
        }
    }

    fn send_one(&mut self, reason: Reason) {
        let result = self.build_and_send();
        let key = CounterKey {
            vip: self.vip,
            interface: self.interface.clone(),
            reason,
        };
        {
            let mut counts = lock(&self.shared.counts);
            let counts = counts.entry(key).or_default();
            match result {
                Ok(()) => counts.sent += 1,
                Err(_) => counts.errors += 1,
            }
        }
        self.log(reason, &result);
        if let Some(observer) = self.shared.observer.get() {
            observer(&FrameEvent {
                vip: self.vip,
                interface: &self.interface,
                reason,
                result: result.as_ref().map(|_| ()),
            });
        }
    }

    fn build_and_send(&self) -> Result<(), AnnounceError> {
        let sender = &self.shared.sender;
        let mac = sender.mac(&self.interface)?;
        match self.vip {
            IpAddr::V4(vip) => sender.send(&self.interface, &frames::gratuitous_arp(mac, vip)),
            IpAddr::V6(vip) => sender.send(&self.interface, &frames::unsolicited_na(mac, vip)),
        }
    }

    fn log(&mut self, reason: Reason, result: &Result<(), AnnounceError>) {
        let (vip, interface) = (self.vip, self.interface.as_str());
        match (result, self.failing) {
            (Ok(()), false) => tracing::trace!(%vip, interface, %reason, "VIP announced"),
            (Ok(()), true) => {
                tracing::info!(%vip, interface, %reason, "VIP announcements are being sent again");
            }
            (Err(error), false) => {
                tracing::warn!(%vip, interface, %reason, %error, "VIP announcement failed");
            }
            (Err(error), true) => {
                tracing::debug!(%vip, interface, %reason, %error, "VIP announcement still failing");
            }
        }
        self.failing = result.is_err();
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Locks a mutex, ignoring poisoning: the maps it guards stay consistent across a panic in
/// an observer because every update is a single insert, remove or increment.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
