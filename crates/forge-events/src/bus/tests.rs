//! Unit tests of the bus: delivery order, lag, filters, closing, try_recv.

use futures::StreamExt;

use super::*;

fn drain(sub: &mut Subscription<u32>) -> Vec<Delivery<u32>> {
    std::iter::from_fn(|| sub.try_recv().ok()).collect()
}

#[test]
fn every_subscriber_gets_every_later_event_in_order() {
    let bus = Bus::new(16);
    bus.publish(0);
    let mut a = bus.subscribe();
    let mut b = bus.subscribe();
    assert_eq!(bus.subscriber_count(), 2);
    for i in 1..=3 {
        assert_eq!(bus.publish(i), 2);
    }
    let expected: Vec<_> = (1..=3).map(Delivery::Event).collect();
    assert_eq!(drain(&mut a), expected);
    assert_eq!(drain(&mut b), expected);
    assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn publishing_without_subscribers_drops_the_event() {
    let bus = Bus::<u32>::default();
    assert_eq!(bus.publish(1), 0);
    assert_eq!(bus.capacity(), DEFAULT_CAPACITY);
    let mut sub = bus.subscribe();
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn zero_capacity_is_one() {
    let bus = Bus::<u32>::new(0);
    assert_eq!(bus.capacity(), 1);
}

#[test]
fn a_slow_subscriber_lags_and_resumes_with_the_oldest_kept_event() {
    let bus = Bus::new(4);
    let mut sub = bus.subscribe();
    for i in 0..10 {
        bus.publish(i);
    }
    let got = drain(&mut sub);
    assert_eq!(
        got,
        [
            Delivery::Lagged(6),
            Delivery::Event(6),
            Delivery::Event(7),
            Delivery::Event(8),
            Delivery::Event(9)
        ]
    );
}

#[test]
fn filters_skip_rejected_events_and_still_report_lag() {
    let bus = Bus::new(4);
    let mut even = bus.subscribe_filtered(|n: &u32| n.is_multiple_of(2));
    for i in 0..4 {
        bus.publish(i);
    }
    assert_eq!(drain(&mut even), [Delivery::Event(0), Delivery::Event(2)]);
    for i in 4..12 {
        bus.publish(i);
    }
    assert_eq!(
        drain(&mut even),
        [Delivery::Lagged(4), Delivery::Event(8), Delivery::Event(10)]
    );
}

#[test]
fn closing_ends_the_stream_after_the_kept_events() {
    let bus = Bus::new(4);
    let mut sub = bus.subscribe();
    let publisher = bus.clone();
    publisher.publish(1);
    drop(bus);
    publisher.publish(2);
    drop(publisher);
    assert_eq!(drain(&mut sub), [Delivery::Event(1), Delivery::Event(2)]);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
}

#[tokio::test]
async fn recv_waits_for_a_publisher_on_another_task() {
    let bus = Bus::new(8);
    let mut sub = bus.subscribe();
    let publisher = bus.clone();
    drop(bus);
    let handle = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        for i in 0..3u32 {
            publisher.publish(i);
        }
    });
    assert_eq!(sub.recv().await, Some(Delivery::Event(0)));
    let rest: Vec<_> = (&mut sub).collect().await;
    assert_eq!(rest, [Delivery::Event(1), Delivery::Event(2)]);
    handle.await.expect("publisher task");
    assert_eq!(sub.recv().await, None);
}

#[tokio::test]
async fn try_recv_after_a_pending_poll_still_sees_the_event() {
    let bus = Bus::new(8);
    let mut sub = bus.subscribe();
    // Park a wait inside the subscription, then publish and take it without awaiting.
    let waited = futures::poll!(sub.next());
    assert!(waited.is_pending());
    bus.publish(7u32);
    assert_eq!(sub.try_recv(), Ok(Delivery::Event(7)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test]
async fn a_filter_that_rejects_a_long_run_yields_and_continues() {
    let bus = Bus::new(2048);
    let mut last = bus.subscribe_filtered(|n: &u32| *n == 1999);
    for i in 0..2000 {
        bus.publish(i);
    }
    assert_eq!(last.next().await, Some(Delivery::Event(1999)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_after_an_empty_try_recv_is_woken_by_the_next_publish() {
    let bus = Bus::new(8);
    let mut sub = bus.subscribe();
    // Park a wait with a real waker, then overwrite it with try_recv's no-op waker.
    assert!(futures::poll!(sub.next()).is_pending());
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    let publisher = bus.clone();
    let handle = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        publisher.publish(5u32);
    });
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), sub.recv()).await;
    assert_eq!(got, Ok(Some(Delivery::Event(5))));
    handle.await.expect("publisher task");
}

#[test]
fn a_finished_subscription_is_terminated() {
    use futures::stream::FusedStream;
    let bus = Bus::<u32>::new(2);
    let mut sub = bus.subscribe();
    assert!(!sub.is_terminated());
    drop(bus);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert!(sub.is_terminated());
}

#[tokio::test]
async fn a_dropped_recv_future_loses_no_event() {
    let bus = Bus::new(8);
    let mut sub = bus.subscribe();
    // Lose a select! race while the receive is parked, then publish.
    tokio::select! {
        biased;
        () = std::future::ready(()) => {}
        _ = sub.recv() => panic!("nothing was published"),
    }
    {
        let recv = sub.recv();
        futures::pin_mut!(recv);
        assert!(futures::poll!(recv.as_mut()).is_pending());
    }
    bus.publish(3u32);
    assert_eq!(sub.recv().await, Some(Delivery::Event(3)));
}

/// Inside a tokio task, `try_recv` drains everything waiting: tokio's cooperative budget
/// (which would report `Pending` after ~128 receives) does not apply to it.
#[tokio::test]
async fn try_recv_in_a_task_drains_past_the_cooperative_budget() {
    let bus = Bus::new(1024);
    let mut sub = bus.subscribe();
    let mut backlog = Vec::new();
    for i in 0..1000u32 {
        bus.publish(i);
        backlog.push(bus.backlog());
    }
    assert_eq!(backlog[0], 1);
    assert_eq!(backlog[999], 1000);
    let mut got = Vec::new();
    while let Ok(Delivery::Event(i)) = sub.try_recv() {
        got.push(i);
    }
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_eq!(bus.backlog(), 0);
}
