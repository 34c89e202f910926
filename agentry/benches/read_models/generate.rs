//! A realistic event log for the read-model bench: conversations of a few organizations, each
//! with runs as the executor records them (queued, started, model calls streaming
//! `message.delta` batches, answers, some tool calls, completed), many conversations in flight
//! at once so their commands interleave in the log as they do under load.
//!
//! Every payload is a domain event enum value serialized by `NewEvent::from_domain`, every
//! metadata map is `CommandContext::to_metadata`'s (its `recorded_at` moved onto a clock that
//! spreads the log over the last 30 days), and each command's events share one metadata and
//! commit together, as the store's append writes them.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use domain::Actor;
use domain::conversation::ConversationEvent;
use domain::run::{ApprovalState, Call, RunEvent};
use eventstore::store::NewEvent;
use eventstore::{CommandContext, RequestOrigin};
use uuid::Uuid;

/// An organization the log is about: its owner acts for it, its agent answers.
#[derive(Clone, Debug)]
pub struct Org {
    pub id: Uuid,
    pub owner: Uuid,
    pub agent_id: Uuid,
    /// Relative share of the conversations.
    pub weight: u32,
}

/// One row of `events` to insert (the columns an append writes).
pub struct Row {
    pub event_id: Uuid,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
}

/// The events of one append, and who appended them.
struct Command {
    context: CommandContext,
    events: Vec<(&'static str, Uuid, i64, NewEvent)>,
}

/// A conversation in flight: the commands of its current run still to be appended.
struct Slot {
    conversation: Option<(Uuid, usize, i64, u32)>,
    pending: VecDeque<Command>,
}

/// Conversations in flight at once.
const SLOTS: usize = 32;
/// The log spans this long, ending now.
const SPAN_DAYS: i64 = 30;

/// Deterministic pseudo-random numbers (SplitMix64): the same log every run.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const WORDS: &[&str] = &[
    "the",
    "order",
    "ships",
    "on",
    "Tuesday",
    "and",
    "your",
    "invoice",
    "is",
    "attached",
    "we",
    "checked",
    "account",
    "balance",
    "weather",
    "in",
    "Paris",
    "will",
    "be",
    "sunny",
    "with",
    "a",
    "high",
    "of",
    "21",
    "degrees",
    "refund",
    "was",
    "processed",
    "yesterday",
    "please",
    "confirm",
];

/// The log, a command at a time, until it holds at least `target` events.
pub struct LogGenerator {
    orgs: Vec<Org>,
    slots: Vec<Slot>,
    rng: Rng,
    clock: DateTime<Utc>,
    step: Duration,
    target: u64,
    emitted: u64,
}

impl LogGenerator {
    pub fn new(orgs: Vec<Org>, target: u64) -> Self {
        let span = Duration::days(SPAN_DAYS);
        let step = span / i32::try_from(target.max(1)).unwrap_or(i32::MAX);
        let slots = (0..SLOTS)
            .map(|_| Slot {
                conversation: None,
                pending: VecDeque::new(),
            })
            .collect();
        Self {
            orgs,
            slots,
            rng: Rng(0x5EED),
            clock: Utc::now() - span,
            step,
            target,
            emitted: 0,
        }
    }

    /// The next command's rows (one transaction); `None` once the target is reached and every
    /// run in flight has ended.
    pub fn next_command(&mut self) -> Option<Vec<Row>> {
        loop {
            let live: Vec<usize> = (0..SLOTS)
                .filter(|&slot| !self.slots[slot].pending.is_empty() || self.emitted < self.target)
                .collect();
            if live.is_empty() {
                return None;
            }
            let slot = live[(self.rng.next() % live.len() as u64) as usize];
            if self.slots[slot].pending.is_empty() {
                self.start_run(slot);
            }
            if let Some(command) = self.slots[slot].pending.pop_front() {
                return Some(self.stamp(command));
            }
        }
    }

    /// Rows of `command`, recorded now on the log's clock.
    fn stamp(&mut self, command: Command) -> Vec<Row> {
        let mut metadata = command.context.to_metadata();
        metadata.insert(
            "recorded_at".to_owned(),
            self.clock.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        let metadata = serde_json::to_string(&metadata).unwrap();
        let count = command.events.len();
        self.emitted += count as u64;
        self.clock += self.step * i32::try_from(count).unwrap_or(1);
        command
            .events
            .into_iter()
            .map(|(aggregate_type, aggregate_id, sequence, event)| Row {
                event_id: event.event_id,
                aggregate_type,
                aggregate_id: aggregate_id.to_string(),
                sequence,
                event_type: event.event_type,
                event_version: event.event_version,
                payload: event.payload,
                metadata: metadata.clone(),
            })
            .collect()
    }

    /// Queues the commands of the slot's next run, in a new conversation when the last one had
    /// all its runs.
    fn start_run(&mut self, slot: usize) {
        let (conversation_id, org_index, sequence, runs_left) = match self.slots[slot].conversation {
            Some(conversation) if conversation.3 > 0 => conversation,
            _ => self.new_conversation(slot),
        };
        let org = self.orgs[org_index].clone();
        let user = user_context(&org, &mut self.rng);
        let run_id = Uuid::now_v7();
        let input = self.sentence(6, 30);
        let mut run = RunBuilder::new(run_id, org.id);
        let conversation = |sequence: i64, event: ConversationEvent| {
            (
                "conversation",
                conversation_id,
                sequence,
                NewEvent::from_domain(&event).unwrap(),
            )
        };
        let started = ConversationEvent::RunStarted {
            run_id,
            input: input.clone(),
        };
        let queued = RunEvent::Queued {
            id: 1,
            run_id,
            org_id: org.id,
            conversation_id,
            agent_id: org.agent_id,
            agent_version: 1,
            input,
        };
        let pending = &mut self.slots[slot].pending;
        pending.push_back(Command {
            context: user.clone(),
            events: vec![conversation(sequence + 1, started)],
        });
        pending.push_back(Command {
            context: user,
            events: vec![run.event(queued)],
        });
        let tools = if self.rng.chance(30) { 1 } else { 0 };
        for command in run.execute(&mut self.rng, tools) {
            self.slots[slot].pending.push_back(command);
        }
        let ended = ConversationEvent::RunEnded { run_id };
        self.slots[slot].pending.push_back(Command {
            context: CommandContext::system(Some(org.id)),
            events: vec![conversation(sequence + 2, ended)],
        });
        self.slots[slot].conversation = Some((conversation_id, org_index, sequence + 2, runs_left - 1));
    }

    /// A conversation created in the slot (its creation queued); answers its state.
    fn new_conversation(&mut self, slot: usize) -> (Uuid, usize, i64, u32) {
        let total: u32 = self.orgs.iter().map(|org| org.weight).sum();
        let mut pick = (self.rng.next() % u64::from(total)) as u32;
        let org = self
            .orgs
            .iter()
            .position(|org| {
                let inside = pick < org.weight;
                pick = pick.saturating_sub(org.weight);
                inside
            })
            .unwrap_or(0);
        let id = Uuid::now_v7();
        let title = self.rng.chance(60).then(|| self.sentence(2, 5));
        let created = ConversationEvent::Created {
            org_id: self.orgs[org].id,
            agent_id: self.orgs[org].agent_id,
            agent_version: 1,
            title,
        };
        let context = user_context(&self.orgs[org], &mut self.rng);
        self.slots[slot].pending.push_back(Command {
            context,
            events: vec![("conversation", id, 1, NewEvent::from_domain(&created).unwrap())],
        });
        (id, org, 1, self.rng.range(1, 5) as u32)
    }

    fn sentence(&mut self, low: u64, high: u64) -> String {
        let words = self.rng.range(low, high);
        (0..words)
            .map(|_| WORDS[(self.rng.next() % WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The owner acting over HTTP: what `Caller::context` records for a request.
fn user_context(org: &Org, rng: &mut Rng) -> CommandContext {
    let address = Ipv4Addr::new(203, 0, 113, (rng.next() % 250) as u8 + 1);
    CommandContext {
        actor: Actor::User { id: org.owner },
        org_id: Some(org.id),
        request: Some(
            RequestOrigin {
                request_id: Uuid::now_v7().to_string(),
                client_ip: Some(IpAddr::V4(address)),
                user_agent: None,
            }
            .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) AgentryConsole/1.4"),
        ),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        impersonator_id: None,
    }
}

/// One run's events with their sequence and stream ids, grouped into the executor's appends.
struct RunBuilder {
    run_id: Uuid,
    org_id: Uuid,
    sequence: i64,
    stream_id: u64,
}

impl RunBuilder {
    fn new(run_id: Uuid, org_id: Uuid) -> Self {
        Self {
            run_id,
            org_id,
            sequence: 0,
            stream_id: 1,
        }
    }

    fn event(&mut self, event: RunEvent) -> (&'static str, Uuid, i64, NewEvent) {
        self.sequence += 1;
        (
            "run",
            self.run_id,
            self.sequence,
            NewEvent::from_domain(&event).unwrap(),
        )
    }

    fn id(&mut self) -> u64 {
        self.stream_id += 1;
        self.stream_id
    }

    /// The executor's appends after `run.queued`: `tools` steps that call a tool, then the
    /// final answer. As the executor merges them: the answer with its tool call's request and
    /// start (or with the run's completion), the tool's result with the next model call.
    fn execute(&mut self, rng: &mut Rng, tools: u32) -> Vec<Command> {
        let context = CommandContext::system(Some(self.org_id));
        let append = |events| Command {
            context: context.clone(),
            events,
        };
        let mut commands = Vec::new();
        let started = RunEvent::Started {
            id: self.id(),
            executor: Uuid::now_v7(),
        };
        commands.push(append(vec![self.event(started)]));
        let mut opening = vec![self.llm_started(1)];
        for step in 1..=tools + 1 {
            let (mut deltas, text) = self.deltas(rng, step);
            let last = deltas.pop();
            if let Some(first) = opening.pop() {
                commands.push(append(vec![first]));
            }
            for delta in deltas {
                commands.push(append(vec![delta]));
            }
            let mut answer: Vec<_> = last.into_iter().collect();
            answer.push(self.llm_completed(rng, step));
            let completed = RunEvent::MessageCompleted {
                id: self.id(),
                step,
                content: text.clone(),
            };
            answer.push(self.event(completed));
            if step <= tools {
                let call_id = Uuid::new_v5(&self.run_id, format!("step:{step}:call:0").as_bytes());
                answer.extend(self.tool_call(step, call_id));
                commands.push(append(answer));
                let output = RunEvent::ToolCallCompleted {
                    id: self.id(),
                    call_id,
                    output: format!("{{\"status\":200,\"body\":\"{}\"}}", "forecast ".repeat(12)),
                };
                let result = self.event(output);
                let next = self.llm_started(step + 1);
                commands.push(append(vec![result, next]));
            } else {
                let done = RunEvent::Completed {
                    id: self.id(),
                    output: text,
                };
                answer.push(self.event(done));
                commands.push(append(answer));
            }
        }
        commands
    }

    fn llm_started(&mut self, step: u32) -> (&'static str, Uuid, i64, NewEvent) {
        let event = RunEvent::LlmCallStarted {
            id: self.id(),
            step,
            model: "echo".to_owned(),
        };
        self.event(event)
    }

    fn llm_completed(&mut self, rng: &mut Rng, step: u32) -> (&'static str, Uuid, i64, NewEvent) {
        let event = RunEvent::LlmCallCompleted {
            id: self.id(),
            step,
            model: "echo".to_owned(),
            prompt_tokens: rng.range(200, 4000),
            completion_tokens: rng.range(20, 400),
            usage_reported: true,
            credits: rng.range(1, 50),
            latency_ms: rng.range(300, 4000),
            finish_reason: "stop".to_owned(),
            retries: 0,
        };
        self.event(event)
    }

    /// The answer streamed as 4 to 16 `message.delta` events of 4 to 10 chunks; its whole text.
    fn deltas(&mut self, rng: &mut Rng, step: u32) -> (Vec<(&'static str, Uuid, i64, NewEvent)>, String) {
        let mut events = Vec::new();
        let mut text = String::new();
        for _ in 0..rng.range(4, 16) {
            let chunks: Vec<String> = (0..rng.range(4, 10))
                .map(|_| format!("{} ", WORDS[(rng.next() % WORDS.len() as u64) as usize]))
                .collect();
            text.extend(chunks.iter().map(String::as_str));
            let first_id = self.stream_id + 1;
            self.stream_id += chunks.len() as u64;
            let delta = RunEvent::MessageDelta {
                first_id,
                step,
                chunks,
            };
            events.push(self.event(delta));
        }
        (events, text)
    }

    /// `tool_call.requested` and `tool_call.started` of a call that needs no approval.
    fn tool_call(&mut self, step: u32, call_id: Uuid) -> Vec<(&'static str, Uuid, i64, NewEvent)> {
        let requested = RunEvent::ToolCallRequested {
            id: self.id(),
            step,
            call: Call {
                call_id,
                model_call_id: format!("call_{}", &call_id.simple().to_string()[..24]),
                name: "lookup_weather".to_owned(),
                arguments: "{\"city\":\"Paris\",\"unit\":\"celsius\"}".to_owned(),
                approval: ApprovalState::NotRequired,
                attempts: 0,
                finished: false,
                expires_at: None,
            },
        };
        let started = RunEvent::ToolCallStarted {
            id: self.id(),
            call_id,
            attempt: 1,
            idempotency_key: call_id.to_string(),
        };
        vec![self.event(requested), self.event(started)]
    }
}
