use super::tap::ACK_TIMEOUT;
use super::*;
use std::time::Duration;
use tokio::sync::mpsc;

struct Src(mpsc::Receiver<Frame>);
impl FrameSource for Src {
    async fn recv(&mut self) -> Option<Frame> {
        self.0.recv().await
    }
}
struct Sink(mpsc::Sender<Frame>);
impl FrameSink for Sink {
    async fn send(&mut self, f: Frame) -> Result<(), SinkClosed> {
        self.0.send(f).await.map_err(|_| SinkClosed)
    }
}

fn pair(n: usize) -> (mpsc::Sender<Frame>, Src, Sink, mpsc::Receiver<Frame>) {
    let (a, b) = mpsc::channel(n);
    let (c, d) = mpsc::channel(n);
    (a, Src(b), Sink(c), d)
}

/// A session bridge between two in-memory sides: what the client and the
/// target send in, what each receives, its counters and its task.
struct Wired {
    c_in: mpsc::Sender<Frame>,
    c_out: mpsc::Receiver<Frame>,
    u_in: mpsc::Sender<Frame>,
    u_out: mpsc::Receiver<Frame>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<ChannelEnd>,
}

/// Starts `run` with a 1 MiB budget and no notices, queues of `queue` frames.
fn wired(queue: usize, stop: impl Into<Stop>, tap: Option<Tap>) -> Wired {
    let stop: Stop = stop.into();
    let (c_in, c_src, c_sink, c_out) = pair(queue);
    let (u_in, u_src, u_sink, u_out) = pair(queue);
    let counters = Arc::new(Counters::default());
    let task = tokio::spawn(run(
        (c_src, c_sink),
        (u_src, u_sink),
        1 << 20,
        counters.clone(),
        stop,
        None,
        tap,
    ));
    Wired {
        c_in,
        c_out,
        u_in,
        u_out,
        counters,
        task,
    }
}

#[tokio::test]
async fn frames_pass_in_order_and_are_counted() {
    let Wired {
        c_in,
        mut c_out,
        u_in,
        mut u_out,
        counters,
        task,
    } = wired(16, CancellationToken::new(), None);
    c_in.send(Frame::Request(Request::Shell)).await.unwrap();
    c_in.send(Frame::Data(Bytes::from_static(b"ls\n")))
        .await
        .unwrap();
    assert_eq!(u_out.recv().await, Some(Frame::Request(Request::Shell)));
    assert_eq!(
        u_out.recv().await,
        Some(Frame::Data(Bytes::from_static(b"ls\n")))
    );
    u_in.send(Frame::Data(Bytes::from_static(b"file\n")))
        .await
        .unwrap();
    u_in.send(Frame::ExitStatus(3)).await.unwrap();
    u_in.send(Frame::Close).await.unwrap();
    assert_eq!(
        c_out.recv().await,
        Some(Frame::Data(Bytes::from_static(b"file\n")))
    );
    assert_eq!(c_out.recv().await, Some(Frame::ExitStatus(3)));
    assert_eq!(c_out.recv().await, Some(Frame::Close));
    // Our close to the client already ended the client lane; its reply may find it gone.
    let _ = c_in.send(Frame::Close).await;
    assert_eq!(u_out.recv().await, Some(Frame::Close));
    assert_eq!(task.await.unwrap(), ChannelEnd::Closed);
    assert_eq!(counters.up.load(Ordering::Relaxed), 3);
    assert_eq!(counters.down.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn slow_sink_holds_at_most_the_budget_then_stops_reading() {
    // A sink that never consumes: the reader must stop pulling after `budget` bytes.
    let (c_in, c_src, c_sink, _c_out) = pair(1);
    let (_u_in, u_src, u_sink, _u_out_never_read) = pair(1);
    let budget = 64 * 1024;
    let task = tokio::spawn(run(
        (c_src, c_sink),
        (u_src, u_sink),
        budget,
        Arc::new(Counters::default()),
        CancellationToken::new(),
        None,
        None,
    ));
    let chunk = Bytes::from(vec![0u8; 16 * 1024]);
    let mut sent = 0usize;
    while tokio::time::timeout(
        Duration::from_millis(200),
        c_in.send(Frame::Data(chunk.clone())),
    )
    .await
    .is_ok()
    {
        sent += chunk.len();
        assert!(
            sent <= budget + 4 * chunk.len(),
            "reader kept pulling past its budget: {sent}"
        );
    }
    assert!(sent >= budget - chunk.len(), "reader stopped early: {sent}");
    task.abort();
}

#[tokio::test]
async fn a_stuck_forward_consumer_ends_the_forward_not_the_reader() {
    // The far side never takes anything: with a stall time the bridge
    // ends the forward instead of leaving its reader stopped for ever.
    let (c_in, c_src, c_sink, mut c_out) = pair(4);
    let (_u_in, u_src, u_sink, _u_out_never_read) = pair(1);
    let stall = Stall {
        up: Some(Duration::from_millis(300)),
        down: None,
    };
    let task = tokio::spawn(run_forward(
        (c_src, c_sink),
        (u_src, u_sink),
        64 * 1024,
        stall,
        Arc::new(Counters::default()),
        CancellationToken::new(),
        None,
    ));
    let feeder = tokio::spawn(async move {
        let chunk = Bytes::from(vec![0u8; 16 * 1024]);
        while c_in.send(Frame::Data(chunk.clone())).await.is_ok() {}
    });
    let end = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert_eq!(end.unwrap().unwrap(), ChannelEnd::Stalled);
    assert_eq!(c_out.recv().await, Some(Frame::Close));
    // The client side's source was dropped: its sender fails, never blocks.
    tokio::time::timeout(Duration::from_secs(2), feeder)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_close_we_sent_ends_the_lane_reading_that_side() {
    // The upstream closes; the client never answers (russh drops the
    // reply to a close it sent): the bridge still ends.
    let Wired {
        c_in: _c_in,
        mut c_out,
        u_in,
        mut u_out,
        task,
        ..
    } = wired(4, CancellationToken::new(), None);
    u_in.send(Frame::Close).await.unwrap();
    assert_eq!(c_out.recv().await, Some(Frame::Close));
    assert_eq!(u_out.recv().await, Some(Frame::Close));
    let end = tokio::time::timeout(Duration::from_secs(2), task).await;
    assert_eq!(end.unwrap().unwrap(), ChannelEnd::Closed);
}

#[tokio::test]
async fn cancel_closes_both_sides() {
    let cancel = CancellationToken::new();
    let Wired {
        c_in: _c_in,
        mut c_out,
        u_in: _u_in,
        mut u_out,
        task,
        ..
    } = wired(4, cancel.clone(), None);
    cancel.cancel();
    assert_eq!(c_out.recv().await, Some(Frame::Close));
    assert_eq!(u_out.recv().await, Some(Frame::Close));
    assert_eq!(task.await.unwrap(), ChannelEnd::Cancelled);
}

#[tokio::test]
async fn a_halted_bridge_delivers_nothing_more_either_way() {
    // The kill switch halts the bridge; the client keeps typing (its
    // session loop has not sent the DISCONNECT yet) and the target keeps
    // printing: none of it may cross, and nothing waits on the halt.
    let stop = Stop::default();
    let Wired {
        c_in,
        mut c_out,
        u_in,
        mut u_out,
        task,
        ..
    } = wired(16, stop.clone(), None);
    c_in.send(Frame::Data(Bytes::from_static(b"id\n")))
        .await
        .unwrap();
    assert_eq!(
        u_out.recv().await,
        Some(Frame::Data(Bytes::from_static(b"id\n")))
    );
    stop.halt.cancel();
    let _ = c_in
        .send(Frame::Data(Bytes::from_static(b"rm -rf /srv\n")))
        .await;
    let _ = c_in.send(Frame::Request(Request::Shell)).await;
    let _ = u_in
        .send(Frame::Data(Bytes::from_static(b"secret\n")))
        .await;
    // Nothing arrives: a wait that times out, or a side dropped unsent to.
    let quiet = Duration::from_millis(300);
    let to_target = tokio::time::timeout(quiet, u_out.recv()).await;
    assert!(
        matches!(to_target, Err(_) | Ok(None)),
        "reached the target after the halt: {to_target:?}"
    );
    let to_client = tokio::time::timeout(quiet, c_out.recv()).await;
    assert!(
        matches!(to_client, Err(_) | Ok(None)),
        "reached the client after the halt: {to_client:?}"
    );
    // The session's end still ends it.
    stop.end.cancel();
    let end = tokio::time::timeout(Duration::from_secs(2), task).await;
    assert_eq!(end.unwrap().unwrap(), ChannelEnd::Cancelled);
}

/// A sink that takes data in batches and records how it was handed over.
struct Gathering(mpsc::UnboundedSender<Vec<Frame>>);
impl FrameSink for Gathering {
    async fn send(&mut self, f: Frame) -> Result<(), SinkClosed> {
        self.0.send(vec![f]).map_err(|_| SinkClosed)
    }
    async fn send_data(&mut self, data: Vec<Bytes>) -> Result<(), SinkClosed> {
        let batch = data.into_iter().map(Frame::Data).collect();
        self.0.send(batch).map_err(|_| SinkClosed)
    }
    fn gathers(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn queued_data_is_gathered_in_order_and_stops_at_other_frames() {
    let (c_in, c_src, c_sink, _c_out) = pair(64);
    let (_u_in, u_src, _, _) = pair(1);
    let (tx, mut batches) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters::default());
    // Everything is queued before the bridge starts, so the writer finds it waiting.
    let b = |s: &'static [u8]| Frame::Data(Bytes::from_static(s));
    for f in [b(b"a"), b(b"b"), b(b"c"), Frame::Eof, b(b"d"), Frame::Close] {
        c_in.send(f).await.unwrap();
    }
    let task = tokio::spawn(run(
        (c_src, c_sink),
        (u_src, Gathering(tx)),
        1 << 20,
        counters.clone(),
        CancellationToken::new(),
        None,
        None,
    ));
    let mut seen = Vec::new();
    while let Some(batch) = batches.recv().await {
        let last = batch.last() == Some(&Frame::Close);
        seen.push(batch);
        if last {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            vec![b(b"a"), b(b"b"), b(b"c")],
            vec![Frame::Eof],
            vec![b(b"d")],
            vec![Frame::Close]
        ]
    );
    assert_eq!(counters.up.load(Ordering::Relaxed), 4);
    task.abort();
}

/// A recorder stand-in: the tap and the queue its copies arrive on.
fn tap() -> (Tap, super::TapRx) {
    let (tx, rx) = super::tap_queue(16);
    let up_data = Arc::new(std::sync::atomic::AtomicBool::new(true));
    (Tap { tx, up_data }, rx)
}

/// Starts a bridge with `tap`; returns the client's sender, the upstream's
/// receiver, the client's receiver and the task.
#[allow(clippy::type_complexity)]
fn tapped_bridge(
    tap: Tap,
) -> (
    mpsc::Sender<Frame>,
    mpsc::Receiver<Frame>,
    mpsc::Receiver<Frame>,
    tokio::task::JoinHandle<ChannelEnd>,
    mpsc::Sender<Frame>,
) {
    let w = wired(16, CancellationToken::new(), Some(tap));
    (w.c_in, w.u_out, w.c_out, w.task, w.u_in)
}

/// The next copy the recorder gets.
async fn copy(rx: &mut super::TapRx) -> Tapped {
    tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("a copy in time")
        .expect("the bridge is alive")
}

/// Nothing reaches `rx` for a while.
async fn quiet(rx: &mut mpsc::Receiver<Frame>, what: &str) {
    let got = tokio::time::timeout(Duration::from_millis(150), rx.recv()).await;
    assert!(got.is_err(), "{what}: {got:?}");
}

#[tokio::test]
async fn a_session_request_waits_until_the_recording_exists() {
    let (tap, mut rec) = tap();
    let (c_in, mut u_out, _c_out, task, _u_in) = tapped_bridge(tap);
    let pty = Frame::Request(Request::Pty {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
        pix_width: 0,
        pix_height: 0,
        modes: Vec::new(),
    });
    // A pty request starts nothing: it is forwarded without an answer.
    c_in.send(pty.clone()).await.unwrap();
    assert!(copy(&mut rec).await.ack.is_none());
    assert_eq!(u_out.recv().await, Some(pty));
    let exec = Frame::Request(Request::Exec(b"id".to_vec()));
    c_in.send(exec.clone()).await.unwrap();
    c_in.send(Frame::Data(Bytes::from_static(b"stdin")))
        .await
        .unwrap();
    let t = copy(&mut rec).await;
    assert_eq!(t.frame, exec);
    let ack = t.ack.expect("a session request asks for an answer");
    quiet(&mut u_out, "forwarded before the recording existed").await;
    assert!(ack.recorded());
    assert_eq!(u_out.recv().await, Some(exec));
    assert_eq!(
        u_out.recv().await,
        Some(Frame::Data(Bytes::from_static(b"stdin")))
    );
    task.abort();
}

#[tokio::test]
async fn a_request_the_recorder_could_not_record_is_never_forwarded() {
    for request in [
        Request::Shell,
        Request::Exec(b"id".to_vec()),
        Request::Subsystem("sftp".into()),
    ] {
        let (tap, mut rec) = tap();
        let (c_in, mut u_out, mut c_out, task, _u_in) = tapped_bridge(tap);
        c_in.send(Frame::Request(request.clone())).await.unwrap();
        // The recorder failed: its answer is dropped unsent.
        drop(copy(&mut rec).await.ack.expect("asks"));
        assert_eq!(u_out.recv().await, Some(Frame::Close), "{request:?}");
        assert_eq!(c_out.recv().await, Some(Frame::Close), "{request:?}");
        let end = tokio::time::timeout(Duration::from_secs(2), task).await;
        assert_eq!(end.unwrap().unwrap(), ChannelEnd::Cancelled);
        assert_eq!(u_out.recv().await, None, "{request:?} forwarded");
    }
}

#[tokio::test]
async fn a_recorder_that_never_answers_ends_the_channel_in_bounded_time() {
    let (tap, mut rec) = tap();
    let (c_in, mut u_out, _c_out, task, _u_in) = tapped_bridge(tap);
    c_in.send(Frame::Request(Request::Shell)).await.unwrap();
    let late = copy(&mut rec).await.ack.expect("asks");
    let end = tokio::time::timeout(ACK_TIMEOUT + Duration::from_secs(2), task).await;
    assert_eq!(end.unwrap().unwrap(), ChannelEnd::Cancelled);
    assert_eq!(u_out.recv().await, Some(Frame::Close));
    assert_eq!(u_out.recv().await, None, "forwarded without a recording");
    // A recorder that answers after all learns the request never went out.
    assert!(!late.recorded());
}

#[tokio::test]
async fn a_gone_recorder_forwards_no_request() {
    let (tap, rec) = tap();
    drop(rec);
    let (c_in, mut u_out, _c_out, task, _u_in) = tapped_bridge(tap);
    c_in.send(Frame::Request(Request::Exec(b"id".to_vec())))
        .await
        .unwrap();
    assert_eq!(u_out.recv().await, Some(Frame::Close));
    let end = tokio::time::timeout(Duration::from_secs(2), task).await;
    assert_eq!(end.unwrap().unwrap(), ChannelEnd::Cancelled);
    assert_eq!(u_out.recv().await, None);
}

#[tokio::test]
async fn tiny_frames_count_their_overhead_against_the_budget() {
    // One-byte frames cost the bastion a Frame, a Bytes, a queue node and a
    // permit each: a peer sending them must hit the budget at about the
    // same memory as one sending full packets, not after `budget` frames.
    let (c_in, c_src, c_sink, _c_out) = pair(1);
    let (_u_in, u_src, u_sink, _u_out_never_read) = pair(1);
    let budget = 64 * 1024;
    let task = tokio::spawn(run(
        (c_src, c_sink),
        (u_src, u_sink),
        budget,
        Arc::new(Counters::default()),
        CancellationToken::new(),
        None,
        None,
    ));
    let tiny = Bytes::from_static(b"x");
    let mut frames = 0usize;
    let most = budget / crate::bridge::FRAME_OVERHEAD + 8;
    while tokio::time::timeout(
        Duration::from_millis(200),
        c_in.send(Frame::Data(tiny.clone())),
    )
    .await
    .is_ok()
    {
        frames += 1;
        assert!(frames <= most, "reader queued {frames} one-byte frames");
    }
    assert!(frames >= most / 2, "reader stopped early: {frames}");
    task.abort();
}

/// sshd may send EOF a moment before exit-status; an OpenSSH client whose
/// input is closed answers EOF with CLOSE at once, and the status would be
/// lost (exit 255). The session bridge puts the status first.
#[tokio::test]
async fn an_exit_status_just_behind_eof_reaches_the_client_first() {
    let Wired {
        c_in: _c_in,
        mut c_out,
        u_in,
        u_out: _u_out,
        task,
        ..
    } = wired(16, CancellationToken::new(), None);
    u_in.send(Frame::Data(Bytes::from_static(b"out\n")))
        .await
        .unwrap();
    u_in.send(Frame::Eof).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    u_in.send(Frame::ExitStatus(3)).await.unwrap();
    u_in.send(Frame::Close).await.unwrap();
    let mut seen = Vec::new();
    while let Some(f) = c_out.recv().await {
        let last = f == Frame::Close;
        seen.push(f);
        if last {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            Frame::Data(Bytes::from_static(b"out\n")),
            Frame::ExitStatus(3),
            Frame::Eof,
            Frame::Close
        ]
    );
    task.abort();
}

/// An EOF with no exit report behind it is held only briefly, and a
/// forward's EOF (a TCP half-close) is never held.
#[tokio::test]
async fn eof_alone_is_delivered_and_forwards_never_hold_it() {
    for forward in [false, true] {
        let (_c_in, c_src, c_sink, mut c_out) = pair(16);
        let (u_in, u_src, u_sink, _u_out) = pair(16);
        let (client, far) = ((c_src, c_sink), (u_src, u_sink));
        let (counters, cancel) = (Arc::new(Counters::default()), CancellationToken::new());
        let task = match forward {
            true => tokio::spawn(run_forward(
                client,
                far,
                1 << 20,
                Stall::default(),
                counters,
                cancel,
                None,
            )),
            false => tokio::spawn(run(client, far, 1 << 20, counters, cancel, None, None)),
        };
        let start = std::time::Instant::now();
        u_in.send(Frame::Eof).await.unwrap();
        assert_eq!(c_out.recv().await, Some(Frame::Eof));
        let waited = start.elapsed();
        if forward {
            assert!(waited < Duration::from_millis(200), "{waited:?}");
        } else {
            assert!(waited < Duration::from_secs(2), "{waited:?}");
        }
        task.abort();
    }
}
