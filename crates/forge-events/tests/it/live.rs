//! Live state: the snapshot plus the following events is the full stream, exactly.

use forge_events::{Apply, Delivery, Live};
use proptest::prelude::*;

/// The simplest state that can show a gap or a duplicate: every event seen, in order.
#[derive(Debug, Clone, Default, PartialEq)]
struct Seen(Vec<(usize, usize)>);

impl Apply<(usize, usize)> for Seen {
    fn apply(&mut self, event: &(usize, usize)) {
        self.0.push(*event);
    }
}

/// Reads `sub` until it has `n` events, blocking this thread; panics on a lag notice.
fn take(sub: &mut forge_events::Subscription<(usize, usize)>, n: usize) -> Vec<(usize, usize)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match futures::executor::block_on(sub.recv()) {
            Some(Delivery::Event(event)) => got.push(event),
            Some(Delivery::Lagged(missed)) => panic!("lagged by {missed}"),
            None => panic!("bus closed after {} of {n} events", got.len()),
        }
    }
    got
}

#[test]
fn snapshot_then_stream_is_the_full_stream_under_concurrent_publishing() {
    let n_publishers = 3;
    let per_publisher = crate::per_publisher(3_000);
    let total = n_publishers * per_publisher;
    let live = Live::new(Seen::default(), total);
    let views = std::thread::scope(|scope| {
        let publishers: Vec<_> = (0..n_publishers)
            .map(|p| {
                let live = live.clone();
                scope.spawn(move || {
                    for n in 0..per_publisher {
                        live.publish((p, n));
                        if n % 500 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        // Late subscribers attach at different moments while publishing goes on.
        let subscribers: Vec<_> = (0..4)
            .map(|i| {
                let live = live.clone();
                scope.spawn(move || {
                    for _ in 0..i * 50 {
                        std::thread::yield_now();
                    }
                    let (snapshot, mut sub) = live.subscribe();
                    let rest = take(&mut sub, total - snapshot.0.len());
                    (snapshot.0.len(), [snapshot.0, rest].concat())
                })
            })
            .collect();
        for publisher in publishers {
            publisher.join().expect("publisher");
        }
        subscribers
            .into_iter()
            .map(|s| s.join().expect("subscriber"))
            .collect::<Vec<_>>()
    });
    let full = live.snapshot().0;
    assert_eq!(full.len(), total);
    for (cut, view) in views {
        assert_eq!(view, full, "view cut after {cut} events");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(64), ..ProptestConfig::default() })]

    /// Any interleaving of publishes and subscribes: each subscriber's snapshot plus what it
    /// receives is the whole stream.
    #[test]
    fn snapshot_then_stream_is_the_full_stream(
        ops in proptest::collection::vec(any::<bool>(), 0..60),
    ) {
        let live = Live::new(Seen::default(), 64);
        let mut subscribers = Vec::new();
        let mut n_published = 0;
        for subscribe in ops {
            if subscribe {
                subscribers.push(live.subscribe());
            } else {
                live.publish((0, n_published));
                n_published += 1;
            }
        }
        let full = live.snapshot().0;
        for (snapshot, mut sub) in subscribers {
            let rest = take(&mut sub, n_published - snapshot.0.len());
            prop_assert_eq!([snapshot.0, rest].concat(), full.clone());
            prop_assert!(sub.try_recv().is_err(), "no duplicate after the last event");
        }
    }
}
