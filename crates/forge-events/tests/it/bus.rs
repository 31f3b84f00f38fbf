//! Bus behaviour across threads: per-publisher order, lag without back-pressure, filters.

use std::time::{Duration, Instant};

use forge_events::{Bus, Delivery, TryRecvError};
use futures::StreamExt;

use crate::TestEvent;

fn log(task: &str, n: usize) -> TestEvent {
    TestEvent::Log {
        task: task.to_owned(),
        line: n.to_string(),
    }
}

#[test]
fn a_subscriber_that_never_reads_does_not_slow_publishers_and_sees_lagged() {
    let bus = Bus::new(64);
    let mut idle = bus.subscribe();
    let n_publishers = 4;
    let per_publisher = 50_000;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for p in 0..n_publishers {
            let bus = bus.clone();
            scope.spawn(move || {
                for n in 0..per_publisher {
                    bus.publish((p, n));
                }
            });
        }
    });
    let elapsed = started.elapsed();
    // Publishing never waits for the idle subscriber; the bound only catches a blocked
    // publisher (200k unoptimized publishes take well under a second even on a busy machine).
    assert!(
        elapsed < Duration::from_secs(20),
        "publishing took {elapsed:?}"
    );

    let total = (n_publishers * per_publisher) as u64;
    let Ok(Delivery::Lagged(missed)) = idle.try_recv() else {
        panic!("the idle subscriber must first be told it lagged");
    };
    assert_eq!(missed, total - 64);
    let mut kept = Vec::new();
    while let Ok(delivery) = idle.try_recv() {
        let Delivery::Event(event) = delivery else {
            panic!("one lag notice only")
        };
        kept.push(event);
    }
    assert_eq!(kept.len(), 64);
    assert_eq!(idle.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_publisher_is_preserved_for_concurrent_subscribers() {
    let n_publishers = 3;
    let per_publisher = crate::per_publisher(2_000);
    let bus = Bus::new(n_publishers * per_publisher);
    let subscribers: Vec<_> = (0..4)
        .map(|_| {
            let sub = bus.subscribe();
            tokio::spawn(async move { sub.collect::<Vec<Delivery<TestEvent>>>().await })
        })
        .collect();
    let publishers: Vec<_> = (0..n_publishers)
        .map(|p| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..per_publisher {
                    bus.publish(log(&format!("p{p}"), n));
                }
            })
        })
        .collect();
    drop(bus);
    for publisher in publishers {
        publisher.join().expect("publisher thread");
    }
    for subscriber in subscribers {
        let got = subscriber.await.expect("subscriber task");
        assert_eq!(
            got.len(),
            n_publishers * per_publisher,
            "no loss with room for all"
        );
        for p in 0..n_publishers {
            let task = format!("p{p}");
            let lines: Vec<String> = got
                .iter()
                .filter_map(|d| match d {
                    Delivery::Event(TestEvent::Log { task: t, line }) if *t == task => {
                        Some(line.clone())
                    }
                    _ => None,
                })
                .collect();
            let expected: Vec<String> = (0..per_publisher).map(|n| n.to_string()).collect();
            assert_eq!(lines, expected, "order of publisher {p}");
        }
    }
}

#[tokio::test]
async fn filters_by_kind_and_by_task() {
    let bus = Bus::new(64);
    let merges = bus.subscribe_filtered(|e: &TestEvent| matches!(e, TestEvent::Merged { .. }));
    let api = bus.subscribe_filtered(|e: &TestEvent| e.task() == "api");
    let all = bus.subscribe();
    let events = [
        TestEvent::Started {
            task: "api".into(),
            attempt: 1,
        },
        TestEvent::Started {
            task: "db".into(),
            attempt: 1,
        },
        TestEvent::Merged {
            task: "db".into(),
            generation: 1,
        },
        TestEvent::LockWaited {
            task: "api".into(),
            paths: vec!["src/**".into()],
            waited_us: 9,
        },
        TestEvent::Merged {
            task: "api".into(),
            generation: 2,
        },
    ];
    for event in &events {
        bus.publish(event.clone());
    }
    drop(bus);
    let collect = |sub: forge_events::Subscription<TestEvent>| async move {
        sub.map(|d| match d {
            Delivery::Event(e) => e,
            Delivery::Lagged(n) => panic!("lagged {n}"),
        })
        .collect::<Vec<_>>()
        .await
    };
    assert_eq!(
        collect(merges).await,
        [events[2].clone(), events[4].clone()]
    );
    assert_eq!(
        collect(api).await,
        [events[0].clone(), events[3].clone(), events[4].clone()]
    );
    assert_eq!(collect(all).await, events);
}

/// One step of the differential test below.
#[derive(Debug, Clone)]
enum Op {
    Publish(u8),
    Subscribe { even_only: bool },
    TryRecv(usize),
    Close,
}

fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Publish),
        1 => any::<bool>().prop_map(|even_only| Op::Subscribe { even_only }),
        4 => (0usize..4).prop_map(Op::TryRecv),
        1 => Just(Op::Close),
    ]
}

/// What a raw broadcast receiver delivers, with the same subscriber-side filter.
fn raw_try_recv(
    rx: &mut tokio::sync::broadcast::Receiver<u8>,
    even_only: bool,
) -> Result<Delivery<u8>, TryRecvError> {
    use tokio::sync::broadcast::error::TryRecvError as Raw;
    loop {
        return match rx.try_recv() {
            Ok(n) if even_only && !n.is_multiple_of(2) => continue,
            Ok(n) => Ok(Delivery::Event(n)),
            Err(Raw::Lagged(missed)) => Ok(Delivery::Lagged(missed)),
            Err(Raw::Empty) => Err(TryRecvError::Empty),
            Err(Raw::Closed) => Err(TryRecvError::Closed),
        };
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: crate::cases(256),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Differential: any sequence of publishes, subscribes, receives and closing gives the
    /// same deliveries (events, lag counts, empty, closed) as raw `tokio::sync::broadcast`.
    #[test]
    fn the_bus_delivers_what_raw_broadcast_delivers(
        capacity in 1usize..9,
        ops in proptest::collection::vec(op_strategy(), 0..80),
    ) {
        let mut bus = Some(Bus::new(capacity));
        let mut raw = Some(tokio::sync::broadcast::channel::<u8>(capacity).0);
        let mut subs = Vec::new();
        for op in ops {
            match op {
                Op::Publish(n) => {
                    if let (Some(bus), Some(raw)) = (&bus, &raw) {
                        let reached = bus.publish(n);
                        proptest::prop_assert_eq!(reached, raw.send(n).unwrap_or(0));
                    }
                }
                Op::Subscribe { even_only } => {
                    if let (Some(bus), Some(raw)) = (&bus, &raw) {
                        let sub = if even_only {
                            bus.subscribe_filtered(|n: &u8| n.is_multiple_of(2))
                        } else {
                            bus.subscribe()
                        };
                        subs.push((sub, raw.subscribe(), even_only));
                    }
                }
                Op::TryRecv(i) => {
                    if let Some((sub, rx, even_only)) = subs.get_mut(i) {
                        proptest::prop_assert_eq!(sub.try_recv(), raw_try_recv(rx, *even_only));
                    }
                }
                Op::Close => {
                    bus = None;
                    raw = None;
                }
            }
        }
        // Drain everything that is left: still the same, down to the closing.
        drop((bus, raw));
        for (sub, rx, even_only) in &mut subs {
            loop {
                let got = sub.try_recv();
                let closed = got == Err(TryRecvError::Closed);
                proptest::prop_assert_eq!(got, raw_try_recv(rx, *even_only));
                if closed {
                    break;
                }
            }
        }
    }
}
