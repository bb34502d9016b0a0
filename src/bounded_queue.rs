//! A lock-free queue for many producers with a bound, that allocates only for
//! what it holds. The click and fraud queues are sized for bursts (tens of
//! thousands of entries) and are nearly empty the rest of the time: a
//! preallocated ring of that size stays resident from start-up.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;

pub struct BoundedQueue<T> {
    items: SegQueue<T>,
    /// Items held plus pushes under way; never past `capacity` once a push returns.
    len: AtomicUsize,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            items: SegQueue::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    /// Adds `item` at the back unless `capacity` items are held; gives it back then.
    pub fn push(&self, item: T) -> Result<(), T> {
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(item);
        }
        self.items.push(item);
        Ok(())
    }

    /// The oldest item, if any.
    pub fn pop(&self) -> Option<T> {
        let item = self.items.pop()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        Some(item)
    }

    /// Items held (a push under way may already count).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_capacity_and_takes_again_after_a_pop() {
        let queue = BoundedQueue::new(2);
        assert_eq!(queue.push(1), Ok(()));
        assert_eq!(queue.push(2), Ok(()));
        assert_eq!(queue.push(3), Err(3));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.push(4), Ok(()));
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), Some(4));
        assert_eq!(queue.pop(), None);
        assert!(queue.is_empty());
    }

    #[test]
    fn concurrent_producers_never_overfill() {
        let queue = std::sync::Arc::new(BoundedQueue::new(1000));
        let accepted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let queue = queue.clone();
                    s.spawn(move || (0..500).filter(|&i| queue.push(i).is_ok()).count())
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(accepted, 1000);
        assert_eq!(queue.len(), 1000);
        assert_eq!(std::iter::from_fn(|| queue.pop()).count(), 1000);
    }
}
