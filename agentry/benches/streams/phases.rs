//! The two kinds of phase, run the same way against Agentry and against the reference:
//! streaming runs with subscribers (token latency, delivered deltas, CPU per delta) and idle
//! connections held on one waiting run (memory per connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::llm::{Llm, Script};
use crate::process::{ServerProcess, own_cpu_seconds};
use crate::subscriber::{Tally, Until, follow};
use crate::target::Target;

/// How long a run's subscribers may take to attach before its LLM streams anyway.
const ATTACH_DEADLINE: Duration = Duration::from_secs(30);

/// Streaming runs: `runs` at once, each with `subscribers`, one after another per lane.
#[derive(Clone, Debug)]
pub struct Streaming {
    pub runs: usize,
    pub subscribers: usize,
    /// Chunks per run.
    pub chunks: u64,
    /// Between chunks; `None`: as fast as possible.
    pub every: Option<Duration>,
    /// Before the measuring window (connections, first runs).
    pub warmup: Duration,
    pub window: Duration,
}

/// What a streaming phase measured over its window.
pub struct StreamingFigures {
    pub target: &'static str,
    pub window: Duration,
    /// `message.delta` frames received by all subscribers in the window.
    pub deltas: u64,
    /// Chunks the LLM generated in the window.
    pub chunks: u64,
    pub server_cpu: f64,
    pub bench_cpu: f64,
    /// Token latency (µs) of the deltas received in the window.
    pub latency: Histogram<u64>,
    pub runs_finished: u64,
    pub server_rss_kib: u64,
    pub problems: String,
}

impl Streaming {
    /// How long after each other the lanes start: paced runs all of a length would otherwise
    /// start and end together, every lane's next run with its subscribers' connections at the
    /// same moment, a wave no real traffic makes. Spread over one run's length, one run ends
    /// and the next starts every `1 / runs` of it. Runs as fast as possible start together.
    pub fn stagger(&self) -> Duration {
        match self.every {
            Some(every) => every * self.chunks as u32 / self.runs.max(1) as u32,
            None => Duration::ZERO,
        }
    }
}

impl StreamingFigures {
    pub fn delivered_per_second(&self) -> f64 {
        self.deltas as f64 / self.window.as_secs_f64()
    }

    /// Server CPU per delivered delta, in µs.
    pub fn cpu_per_delta_us(&self) -> f64 {
        if self.deltas == 0 {
            return f64::NAN;
        }
        self.server_cpu * 1e6 / self.deltas as f64
    }
}

/// The counters read at the window's edges.
struct Reading {
    at: Instant,
    deltas: u64,
    chunks: u64,
    server_cpu: f64,
    bench_cpu: f64,
}

impl Reading {
    fn take(server: &ServerProcess, tally: &Tally, llm: &Llm) -> Self {
        Self {
            at: Instant::now(),
            deltas: tally.deltas.load(Ordering::Relaxed),
            chunks: llm.chunks_sent(),
            server_cpu: server.cpu_seconds(),
            bench_cpu: own_cpu_seconds(),
        }
    }
}

/// Runs `load` against `target` (served by `server`) and measures its window.
pub async fn streaming(
    target: &Target,
    server: &ServerProcess,
    llm: &Arc<Llm>,
    load: &Streaming,
) -> StreamingFigures {
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let runs_finished = Arc::new(AtomicU64::new(0));
    let stagger = load.stagger();
    let lanes: Vec<_> = (0..load.runs)
        .map(|lane| {
            let (target, llm, tally, stop, runs_finished, load) = (
                target.clone(),
                Arc::clone(llm),
                Arc::clone(&tally),
                Arc::clone(&stop),
                Arc::clone(&runs_finished),
                load.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(stagger * lane as u32).await;
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let tag = format!("{}-{lane}-{sequence}", target.name());
                    stream_one_run(&target, &llm, &tally, &load, tag).await;
                    runs_finished.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(stagger * load.runs as u32 + load.warmup).await;
    let before = Reading::take(server, &tally, llm);
    let runs_before = runs_finished.load(Ordering::Relaxed);
    tally.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(load.window).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let after = Reading::take(server, &tally, llm);
    let runs_in_window = runs_finished.load(Ordering::Relaxed) - runs_before;
    let server_rss_kib = server.rss_kib();
    stop.store(true, Ordering::Relaxed);
    for lane in lanes {
        lane.await.unwrap();
    }
    let latency = tally.latency.lock().unwrap().clone();
    StreamingFigures {
        target: target.name(),
        window: after.at - before.at,
        deltas: after.deltas - before.deltas,
        chunks: after.chunks - before.chunks,
        server_cpu: after.server_cpu - before.server_cpu,
        bench_cpu: after.bench_cpu - before.bench_cpu,
        latency,
        runs_finished: runs_in_window,
        server_rss_kib,
        problems: tally.problems(),
    }
}

/// One run: started, its subscribers attached, then its LLM released; until every subscriber
/// has seen its end.
async fn stream_one_run(target: &Target, llm: &Llm, tally: &Arc<Tally>, load: &Streaming, tag: String) {
    let gate = llm.gate(&tag);
    let script = Script {
        chunks: load.chunks,
        every: load.every,
        tag: Some(tag),
    };
    let run_id = target.start_run(&script.input()).await;
    let mut attached = Vec::with_capacity(load.subscribers);
    let mut subscribers = Vec::with_capacity(load.subscribers);
    for number in 0..load.subscribers {
        let (attach, attaching) = oneshot::channel();
        attached.push(attaching);
        let (target, run_id, tally) = (target.clone(), run_id.clone(), Arc::clone(tally));
        subscribers.push(tokio::spawn(async move {
            follow(&target, &run_id, &tally, Some(attach), Until::End, number == 0).await
        }));
    }
    for attaching in attached {
        let _ = tokio::time::timeout(ATTACH_DEADLINE, attaching).await;
    }
    let _ = gate.send(());
    for subscriber in subscribers {
        subscriber.await.unwrap();
    }
}

/// `connections` idle WebSockets on one run that waits, opened `concurrency` at a time, held
/// for `hold`.
#[derive(Clone, Debug)]
pub struct Idle {
    pub connections: usize,
    pub concurrency: usize,
    pub hold: Duration,
}

/// What an idle phase measured; memory in KiB.
pub struct IdleFigures {
    pub target: &'static str,
    pub connections: usize,
    /// Connections that received their first frame (of `connections`).
    pub attached: u64,
    pub opened_in: Duration,
    /// With one connection open (the run's feed and what is shared exist).
    pub rss_base: u64,
    /// With every connection open, 2 s after the last attached.
    pub rss_open: u64,
    /// At the end of the hold (heartbeats sent and answered meanwhile).
    pub rss_held: u64,
    /// 2 s after they all closed.
    pub rss_closed: u64,
    /// With as many opened again (whether what the first ones held was freed for reuse).
    pub rss_reopened: u64,
    /// Server CPU over the hold, in seconds.
    pub cpu_held: f64,
    pub hold: Duration,
    pub problems: String,
}

impl IdleFigures {
    /// Server memory per connection, in KiB (the larger of the two readings with all open).
    pub fn kib_per_connection(&self) -> f64 {
        let open = self.rss_open.max(self.rss_held);
        open.saturating_sub(self.rss_base) as f64 / self.connections as f64
    }
}

/// Idle connections on one run, opened a bounded number at a time.
struct Holders {
    target: Target,
    run_id: String,
    tally: Arc<Tally>,
    /// Lets at most `concurrency` connections be opening at once.
    opening: Arc<Semaphore>,
    concurrency: u32,
    attached: Arc<AtomicU64>,
}

/// Connections opened together, and what closes them.
struct Held {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<u64>>,
}

impl Holders {
    /// Opens `count` connections; returns once each received its first frame (or gave up).
    async fn open(&self, count: usize) -> Held {
        let stop = CancellationToken::new();
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let permit = Arc::clone(&self.opening).acquire_owned().await.unwrap();
            let (target, run_id, tally, stop, attached) = (
                self.target.clone(),
                self.run_id.clone(),
                Arc::clone(&self.tally),
                stop.clone(),
                Arc::clone(&self.attached),
            );
            let (attach, attaching) = oneshot::channel();
            tokio::spawn(async move {
                if tokio::time::timeout(ATTACH_DEADLINE, attaching)
                    .await
                    .is_ok_and(|heard| heard.is_ok())
                {
                    attached.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
            tasks.push(tokio::spawn(async move {
                follow(&target, &run_id, &tally, Some(attach), Until::Told(stop), false).await
            }));
        }
        // Every permit back: every connection attached (or gave up).
        let _ = self.opening.acquire_many(self.concurrency).await.unwrap();
        Held { stop, tasks }
    }
}

impl Held {
    /// Closes them (each with a close frame) and waits until they are closed.
    async fn close(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Opens `idle.connections` WebSockets on one waiting run of `target` and reads the server's
/// memory before, with them, after they closed and with as many opened again.
pub async fn idle(target: &Target, server: &ServerProcess, idle: &Idle) -> IdleFigures {
    let settle = Duration::from_secs(2);
    let run_id = target.start_idle_run().await;
    let holders = Holders {
        target: target.clone(),
        run_id: run_id.clone(),
        tally: Arc::new(Tally::default()),
        opening: Arc::new(Semaphore::new(idle.concurrency)),
        concurrency: idle.concurrency as u32,
        attached: Arc::new(AtomicU64::new(0)),
    };
    // The first connection makes the run's feed; the baseline is taken with it open.
    let first = holders.open(1).await;
    tokio::time::sleep(settle).await;
    let rss_base = server.rss_kib();
    let attached_before = holders.attached.load(Ordering::Relaxed);

    let started = Instant::now();
    let held = holders.open(idle.connections).await;
    let opened_in = started.elapsed();
    let attached = holders.attached.load(Ordering::Relaxed) - attached_before;
    tokio::time::sleep(settle).await;
    let rss_open = server.rss_kib();
    let cpu_before = server.cpu_seconds();
    tokio::time::sleep(idle.hold).await;
    let cpu_held = server.cpu_seconds() - cpu_before;
    let rss_held = server.rss_kib();
    held.close().await;
    tokio::time::sleep(settle).await;
    let rss_closed = server.rss_kib();

    let held = holders.open(idle.connections).await;
    tokio::time::sleep(settle).await;
    let rss_reopened = server.rss_kib();
    held.close().await;
    first.close().await;
    target.end_idle_run(&run_id).await;
    IdleFigures {
        target: target.name(),
        connections: idle.connections,
        attached,
        opened_in,
        rss_base,
        rss_open,
        rss_held,
        rss_closed,
        rss_reopened,
        cpu_held,
        hold: idle.hold,
        problems: holders.tally.problems(),
    }
}
