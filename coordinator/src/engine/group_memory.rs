//! A resource group's share of the memory pool: the group's running queries
//! together may hold at most `memory_share` of the pool's limit. Reservations
//! go to the server's pool as before (so the server's limit still holds), and
//! a query that would take its group past its share spills or fails with
//! 53200 while other groups keep the rest.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// The server's pool, bounded for one group's queries.
#[derive(Debug)]
pub struct GroupMemoryPool {
    group: String,
    inner: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl GroupMemoryPool {
    /// `group`'s queries draw from `inner`, at most `limit` bytes together.
    pub fn new(group: &str, inner: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self {
            group: group.to_string(),
            inner,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for GroupMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resource group \"{}\" share of {}",
            self.group, self.inner
        )
    }
}

impl MemoryPool for GroupMemoryPool {
    fn name(&self) -> &str {
        "resource_group"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::SeqCst);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::SeqCst);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + additional <= self.limit).then_some(used + additional)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "{} asked for {additional} more bytes, but resource group \"{}\" holds \
                     {used} of its memory share of {} bytes",
                    reservation.consumer().name(),
                    self.group,
                    self.limit
                ))
            })?;
        if let Err(e) = self.inner.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_group_is_held_to_its_share_and_the_server_to_its_limit() {
        let server: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let group: Arc<dyn MemoryPool> =
            Arc::new(GroupMemoryPool::new("adhoc", Arc::clone(&server), 400));
        let a = MemoryConsumer::new("a").register(&group);
        a.try_grow(300).unwrap();
        let refused = a.try_grow(200).unwrap_err().to_string();
        assert!(
            refused.contains("resource group \"adhoc\" holds 300"),
            "{refused}"
        );
        assert_eq!((group.reserved(), server.reserved()), (300, 300));
        // Others draw on the rest of the server's pool.
        let other = MemoryConsumer::new("other").register(&server);
        other.try_grow(650).unwrap();
        assert!(a.try_grow(100).is_err(), "the server's pool is full");
        assert_eq!(group.reserved(), 300);
        drop(a);
        assert_eq!((group.reserved(), server.reserved()), (0, 650));
    }
}
