//! `scim.notify(url, body)`: outbound JSON POSTs to allow-listed hosts. A call
//! only buffers the notification for the hook call it runs in; when the hook
//! succeeds, the buffer goes to a bounded queue drained by one background thread
//! that POSTs with retries and backoff, at most `rate` per second. A full queue
//! drops the notification with a log line; nothing here ever blocks a hook.

use serde_json::Value;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One queued POST.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub url: String,
    pub body: Value,
    /// The script that sent it (for the log).
    pub script: String,
    pub request_id: Option<String>,
}

/// Is `url` an http(s) URL whose host is on the allow-list (exact host names,
/// case-insensitive; an entry `host:port` also pins the port)?
pub(crate) fn allowed(url: &str, allow: &[String]) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL '{url}': {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("URL '{url}' is not http or https"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("URL '{url}' has no host"))?
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default();
    let ok = allow.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        match entry.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                h == host && p.parse::<u16>().ok() == port
            }
            _ => entry == host,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(format!("host '{host}' is not on the notify allow-list"))
    }
}

/// The background sender.
pub(crate) struct Notifier {
    tx: SyncSender<Notification>,
}

pub(crate) struct NotifySettings {
    pub(crate) queue: usize,
    pub(crate) rate_per_sec: u32,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) timeout: Duration,
}

impl Notifier {
    pub(crate) fn start(settings: NotifySettings) -> Arc<Notifier> {
        let (tx, rx) = sync_channel(settings.queue.max(1));
        let spawned = std::thread::Builder::new()
            .name("scim-script-notify".into())
            .spawn(move || drain(rx, settings));
        if let Err(e) = spawned {
            tracing::error!(target: "scim_script", error = %e, "cannot start the notify thread; notifications will be dropped");
        }
        Arc::new(Notifier { tx })
    }

    /// Queue without waiting; a full queue drops the notification (logged).
    pub(crate) fn enqueue(&self, n: Notification) {
        match self.tx.try_send(n) {
            Ok(()) => {}
            Err(TrySendError::Full(n)) => {
                tracing::warn!(target: "scim_script", script = %n.script, request_id = n.request_id.as_deref().unwrap_or(""), url = %n.url, "notify queue full: notification dropped");
            }
            Err(TrySendError::Disconnected(n)) => {
                tracing::warn!(target: "scim_script", script = %n.script, request_id = n.request_id.as_deref().unwrap_or(""), url = %n.url, "notify thread gone: notification dropped");
            }
        }
    }
}

fn drain(rx: Receiver<Notification>, s: NotifySettings) {
    let client = match reqwest::blocking::Client::builder()
        .timeout(s.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "scim_script", error = %e, "cannot build the notify HTTP client");
            return;
        }
    };
    let gap = if s.rate_per_sec == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(1) / s.rate_per_sec
    };
    let mut last: Option<Instant> = None;
    while let Ok(n) = rx.recv() {
        let mut attempt = 0u32;
        let mut delay = s.backoff;
        loop {
            if let Some(prev) = last {
                let since = prev.elapsed();
                if since < gap {
                    std::thread::sleep(gap - since);
                }
            }
            last = Some(Instant::now());
            let result = client.post(&n.url).json(&n.body).send();
            let failure = match result {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("HTTP {}", resp.status())),
                Err(e) => Some(e.to_string()),
            };
            let Some(why) = failure else { break };
            attempt += 1;
            if attempt > s.retries {
                tracing::warn!(target: "scim_script", script = %n.script, request_id = n.request_id.as_deref().unwrap_or(""), url = %n.url, error = %why, "notification failed; giving up");
                break;
            }
            tracing::debug!(target: "scim_script", script = %n.script, url = %n.url, error = %why, attempt, "notification failed; retrying");
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
    }
}
