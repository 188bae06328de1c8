//! A connector's connection pools (or clients), one per source, keyed once.
//!
//! On the coordinator a pool lives as long as a table that reads its source:
//! the cache holds only a weak reference, so dropping the last such table
//! closes its connections. On a worker no table holds the pools of shipped
//! scans, so they are kept for an idle period after their last use instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

struct Entry<T> {
    weak: Weak<T>,
    /// A strong reference kept until the deadline (pools of shipped scans).
    kept: Option<(Arc<T>, Instant)>,
}

/// Values by key; see the module documentation for their lifetime.
pub struct PoolCache<T> {
    entries: Mutex<BTreeMap<String, Entry<T>>>,
}

impl<T> Default for PoolCache<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

impl<T> PoolCache<T> {
    /// The live value for `key`, or a new one from `open`. With `keep`, the
    /// value also stays cached for that long after this use.
    pub fn get(&self, key: &str, keep: Option<Duration>, open: impl FnOnce() -> T) -> Arc<T> {
        match self.try_get(key, keep, || Ok::<T, std::convert::Infallible>(open())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// As [`PoolCache::get`], with an `open` that may fail; it runs only on a
    /// miss, and a failure caches nothing.
    pub fn try_get<E>(
        &self,
        key: &str,
        keep: Option<Duration>,
        open: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for entry in entries.values_mut() {
            if entry.kept.as_ref().is_some_and(|(_, until)| *until <= now) {
                entry.kept = None;
            }
        }
        entries.retain(|_, entry| entry.weak.strong_count() > 0);
        let value = match entries.get(key).and_then(|e| e.weak.upgrade()) {
            Some(value) => value,
            None => Arc::new(open()?),
        };
        let entry = entries.entry(key.to_string()).or_insert_with(|| Entry {
            weak: Arc::downgrade(&value),
            kept: None,
        });
        entry.weak = Arc::downgrade(&value);
        if let Some(keep) = keep {
            entry.kept = Some((Arc::clone(&value), now + keep));
        }
        Ok(value)
    }

    /// How many values are alive (for tests and metrics).
    pub fn live(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .values()
            .filter(|e| e.weak.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_by_default_kept_on_request() {
        let cache: PoolCache<u32> = PoolCache::default();
        let a = cache.get("a", None, || 1);
        assert!(Arc::ptr_eq(&a, &cache.get("a", None, || 2)));
        drop(a);
        assert_eq!(*cache.get("a", None, || 3), 3);
        assert_eq!(cache.live(), 0);
        let kept = cache.get("b", Some(Duration::from_secs(60)), || 4);
        drop(kept);
        assert_eq!(*cache.get("b", None, || 5), 4);
        let brief = cache.get("c", Some(Duration::ZERO), || 6);
        drop(brief);
        assert_eq!(*cache.get("c", None, || 7), 7);
    }

    #[test]
    fn failed_open_caches_nothing_and_hits_skip_open() {
        let cache: PoolCache<u32> = PoolCache::default();
        assert_eq!(cache.try_get("a", None, || Err("down")), Err("down"));
        assert_eq!(cache.live(), 0);
        let a = cache.try_get("a", None, || Ok::<_, &str>(1)).unwrap();
        let again = cache.try_get("a", None, || -> Result<u32, &str> {
            panic!("opened twice")
        });
        assert!(Arc::ptr_eq(&a, &again.unwrap()));
    }
}
