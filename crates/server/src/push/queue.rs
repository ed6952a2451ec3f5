//! The push sender's queue: which notification gets the next free worker.
//!
//! Jobs wait per push-service origin and are taken round-robin between the origins that have
//! work, each origin with at most `per_origin` requests in flight, so a backlog for one push
//! service cannot starve another and a hanging one cannot hold every worker. Origins whose
//! requests recently went unanswered (timeouts, refused connections) are *slow*: together
//! they may hold at most `slow_share` workers, so one account subscribing at many hanging
//! origins cannot take the workers one origin at a time either. Jobs that wait to be retried
//! sit here until their time, holding no worker. Everything waiting, now or for a retry,
//! counts against one bound.
//!
//! Pure bookkeeping: no I/O, no clock of its own (callers pass `now`), no locking (the
//! notifier holds it behind a mutex, briefly). It must not lose a job silently: a job is
//! either taken, or refused to the caller at the bound.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long an origin counts as slow after a request to it went unanswered.
pub(super) const SLOW_FOR: Duration = Duration::from_secs(60);

/// A taken job's claim on its origin's share; give it back with [`SendQueue::done`].
#[derive(Debug)]
pub(super) struct Ticket {
    pub origin: String,
    /// Whether it counts against the slow origins' share.
    slow: bool,
}

pub(super) struct SendQueue<J> {
    /// Jobs ready to go, per origin; an origin has an entry only while it has jobs.
    ready: HashMap<String, VecDeque<J>>,
    /// The origins with ready jobs, in turn order; each appears once.
    turns: VecDeque<String>,
    /// Requests in flight per origin (entries removed at zero).
    in_flight: HashMap<String, usize>,
    /// Requests in flight to origins that were slow when they were taken.
    slow_in_flight: usize,
    /// Origins that went unanswered, and until when they count as slow.
    slow_until: HashMap<String, Instant>,
    /// Jobs waiting for the time of their next attempt, soonest first.
    retries: BinaryHeap<Reverse<Delayed<J>>>,
    /// A tie-breaker that keeps retries due at the same instant in their order.
    retry_seq: u64,
    /// Ready and retry-waiting jobs.
    len: usize,
    limit: usize,
    per_origin: usize,
    slow_share: usize,
}

struct Delayed<J> {
    due: Instant,
    seq: u64,
    origin: String,
    job: J,
}

impl<J> PartialEq for Delayed<J> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<J> Eq for Delayed<J> {}
impl<J> PartialOrd for Delayed<J> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<J> Ord for Delayed<J> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl<J> SendQueue<J> {
    /// `limit` jobs may wait; `workers` is the sender's concurrency. One origin gets at most
    /// a quarter of the workers and the slow origins together at most half (at least one).
    pub fn new(limit: usize, workers: usize) -> SendQueue<J> {
        SendQueue {
            ready: HashMap::new(),
            turns: VecDeque::new(),
            in_flight: HashMap::new(),
            slow_in_flight: 0,
            slow_until: HashMap::new(),
            retries: BinaryHeap::new(),
            retry_seq: 0,
            len: 0,
            limit,
            per_origin: (workers / 4).max(1),
            slow_share: (workers / 2).max(1),
        }
    }

    /// Queues a job for `origin`; gives it back when the queue is full.
    pub fn push(&mut self, origin: String, job: J) -> Result<(), J> {
        if self.len >= self.limit {
            return Err(job);
        }
        self.len += 1;
        self.make_ready(origin, job);
        Ok(())
    }

    /// Queues a job to become ready at `due`; gives it back when the queue is full.
    pub fn retry_at(&mut self, origin: String, job: J, due: Instant) -> Result<(), J> {
        if self.len >= self.limit {
            return Err(job);
        }
        self.len += 1;
        self.retry_seq += 1;
        self.retries.push(Reverse(Delayed {
            due,
            seq: self.retry_seq,
            origin,
            job,
        }));
        Ok(())
    }

    /// When the next retry is due, if any waits.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.peek().map(|Reverse(d)| d.due)
    }

    /// The next job that may start now, in turn among the origins that have ready work and
    /// room in their share; `None` when nothing may start.
    pub fn take(&mut self, now: Instant) -> Option<(Ticket, J)> {
        while self.retries.peek().is_some_and(|Reverse(d)| d.due <= now) {
            if let Some(Reverse(d)) = self.retries.pop() {
                self.make_ready(d.origin, d.job);
            }
        }
        for _ in 0..self.turns.len() {
            let origin = self.turns.pop_front()?;
            let busy = self.in_flight.get(&origin).copied().unwrap_or(0);
            let slow = self.is_slow(&origin, now);
            if busy >= self.per_origin || (slow && self.slow_in_flight >= self.slow_share) {
                // No room now; it keeps its place in the rotation.
                self.turns.push_back(origin);
                continue;
            }
            let Some(jobs) = self.ready.get_mut(&origin) else {
                continue;
            };
            let Some(job) = jobs.pop_front() else {
                self.ready.remove(&origin);
                continue;
            };
            if jobs.is_empty() {
                self.ready.remove(&origin);
            } else {
                self.turns.push_back(origin.clone());
            }
            self.len -= 1;
            *self.in_flight.entry(origin.clone()).or_default() += 1;
            if slow {
                self.slow_in_flight += 1;
            }
            return Some((Ticket { origin, slow }, job));
        }
        None
    }

    /// A taken job's request finished (whatever its outcome): its share is free again.
    pub fn done(&mut self, ticket: Ticket) {
        if let Some(n) = self.in_flight.get_mut(&ticket.origin) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&ticket.origin);
            }
        }
        if ticket.slow {
            self.slow_in_flight = self.slow_in_flight.saturating_sub(1);
        }
    }

    /// A request to `origin` went unanswered: it counts as slow until [`SLOW_FOR`] from now.
    pub fn mark_slow(&mut self, origin: &str, now: Instant) {
        // Forget origins whose time is over, so the map stays as small as the trouble.
        self.slow_until.retain(|_, until| *until > now);
        self.slow_until.insert(origin.to_owned(), now + SLOW_FOR);
    }

    /// Jobs waiting, ready or for a retry.
    pub fn len(&self) -> usize {
        self.len
    }

    fn is_slow(&self, origin: &str, now: Instant) -> bool {
        self.slow_until
            .get(origin)
            .is_some_and(|until| *until > now)
    }

    fn make_ready(&mut self, origin: String, job: J) {
        match self.ready.get_mut(&origin) {
            Some(jobs) => jobs.push_back(job),
            None => {
                self.ready.insert(origin.clone(), VecDeque::from([job]));
                self.turns.push_back(origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut SendQueue<u32>, now: Instant) -> Vec<(Ticket, u32)> {
        std::iter::from_fn(|| q.take(now)).collect()
    }

    #[test]
    fn origins_take_turns_and_one_origin_gets_at_most_its_share() {
        // 8 workers: 2 per origin.
        let mut q = SendQueue::new(100, 8);
        let now = Instant::now();
        for i in 0..50 {
            q.push("https://hang.example".into(), i).unwrap();
        }
        q.push("https://fine.example".into(), 100).unwrap();
        q.push("https://fine.example".into(), 101).unwrap();
        let taken = drain(&mut q, now);
        let jobs: Vec<u32> = taken.iter().map(|(_, j)| *j).collect();
        // A queue full of one origin's jobs does not make the other wait behind them.
        assert_eq!(jobs, vec![0, 100, 1, 101]);
        assert_eq!(q.len(), 48);
        // The hanging origin is at its share: nothing more of it starts until one finishes.
        let mut tickets = taken.into_iter().map(|(t, _)| t);
        assert!(q.take(now).is_none());
        let first = tickets.next().unwrap();
        assert_eq!(first.origin, "https://hang.example");
        q.done(first);
        assert_eq!(q.take(now).map(|(_, j)| j), Some(2));
        assert!(q.take(now).is_none());
    }

    #[test]
    fn slow_origins_together_get_at_most_half_the_workers() {
        // 8 workers: 2 per origin, 4 for the slow ones together.
        let mut q = SendQueue::new(100, 8);
        let now = Instant::now();
        for o in 0..5 {
            let origin = format!("https://hang{o}.example");
            q.mark_slow(&origin, now);
            for i in 0..10 {
                q.push(origin.clone(), o * 10 + i).unwrap();
            }
        }
        let slow = drain(&mut q, now);
        assert_eq!(slow.len(), 4, "slow origins stop at half the workers");
        q.push("https://fine.example".into(), 99).unwrap();
        let fine = drain(&mut q, now);
        assert_eq!(fine.iter().map(|(_, j)| *j).collect::<Vec<_>>(), vec![99]);
        // Finishing a slow request frees room for another slow one.
        let mut slow = slow.into_iter();
        q.done(slow.next().unwrap().0);
        assert_eq!(drain(&mut q, now).len(), 1);
        // After SLOW_FOR an origin is an ordinary one again.
        let later = now + SLOW_FOR + Duration::from_secs(1);
        assert!(!drain(&mut q, later).is_empty());
    }

    #[test]
    fn retries_wait_for_their_time_and_count_against_the_bound() {
        let mut q = SendQueue::new(2, 4);
        let now = Instant::now();
        q.retry_at("https://a.example".into(), 1, now + Duration::from_secs(3))
            .unwrap();
        q.push("https://a.example".into(), 2).unwrap();
        assert_eq!(q.push("https://b.example".into(), 3), Err(3), "bounded");
        assert_eq!(q.next_retry(), Some(now + Duration::from_secs(3)));
        let (t, j) = q.take(now).unwrap();
        assert_eq!(j, 2);
        q.done(t);
        assert!(
            q.take(now + Duration::from_secs(2)).is_none(),
            "not yet due"
        );
        let (_, j) = q.take(now + Duration::from_secs(3)).unwrap();
        assert_eq!(j, 1);
        assert_eq!((q.len(), q.next_retry()), (0, None));
    }
}
