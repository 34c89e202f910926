//! Writing the generated log into `events` fast, with one transaction per command as the
//! store's appends would: each chunk of commands goes into an unlogged staging table in one
//! statement, then a procedure inserts its rows in order and commits after each command's last
//! row (so every command gets its own `transaction_id`, `pg_current_xact_id()`, and positions
//! follow). `synchronous_commit` is off on the loading session only: the bench does not need
//! the load to survive a crash, and a flush per command would make setup take many minutes.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::generate::{LogGenerator, Org, Row};

/// Commands' rows staged at a time.
const CHUNK_ROWS: usize = 20_000;

const SETUP: &str = "
SET synchronous_commit = off;
CREATE UNLOGGED TABLE bench_staging (
    n bigint PRIMARY KEY, last_of_command boolean NOT NULL, event_id uuid NOT NULL,
    aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint NOT NULL,
    event_type text NOT NULL, event_version text NOT NULL, payload text NOT NULL, metadata text NOT NULL);
CREATE PROCEDURE bench_flush() LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM bench_staging ORDER BY n LOOP
        INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
        VALUES (r.event_id, r.aggregate_type, r.aggregate_id, r.sequence, r.event_type, r.event_version,
                r.payload::json, r.metadata::json);
        IF r.last_of_command THEN
            COMMIT;
        END IF;
    END LOOP;
END $$;";

const STAGE: &str = "
INSERT INTO bench_staging
SELECT * FROM UNNEST($1::bigint[], $2::boolean[], $3::uuid[], $4::text[], $5::text[], $6::bigint[],
                     $7::text[], $8::text[], $9::text[], $10::text[])";

/// What the load did.
pub struct Loaded {
    pub events: u64,
    pub commands: u64,
    pub elapsed: Duration,
}

/// Generates the log of `orgs` (at least `target` events) and writes it on a connection of
/// its own to `url`. Generation runs on another thread, a chunk ahead of the database.
pub async fn load(url: &str, orgs: Vec<Org>, target: u64) -> Loaded {
    let started = Instant::now();
    let mut connection = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(SETUP).execute(&mut connection).await.unwrap();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Vec<Row>>>(2);
    let generator = std::thread::spawn(move || {
        let mut log = LogGenerator::new(orgs, target);
        let mut chunk = Vec::new();
        let mut rows = 0;
        while let Some(command) = log.next_command() {
            rows += command.len();
            chunk.push(command);
            if rows >= CHUNK_ROWS {
                sender.blocking_send(std::mem::take(&mut chunk)).unwrap();
                rows = 0;
            }
        }
        if !chunk.is_empty() {
            sender.blocking_send(chunk).unwrap();
        }
    });
    let (mut events, mut commands, mut n) = (0u64, 0u64, 0i64);
    while let Some(chunk) = receiver.recv().await {
        commands += chunk.len() as u64;
        let staged = Staged::of(&chunk, &mut n);
        events += staged.n.len() as u64;
        staged.write(&mut connection).await;
        sqlx::raw_sql("CALL bench_flush()")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::raw_sql("TRUNCATE bench_staging")
            .execute(&mut connection)
            .await
            .unwrap();
        eprint!("\rloaded {events} events");
    }
    eprintln!();
    generator.join().unwrap();
    sqlx::raw_sql("DROP PROCEDURE bench_flush(); DROP TABLE bench_staging")
        .execute(&mut connection)
        .await
        .unwrap();
    Loaded {
        events,
        commands,
        elapsed: started.elapsed(),
    }
}

/// A chunk's rows as the staging statement's columns.
#[derive(Default)]
struct Staged {
    n: Vec<i64>,
    last_of_command: Vec<bool>,
    event_id: Vec<Uuid>,
    aggregate_type: Vec<&'static str>,
    aggregate_id: Vec<String>,
    sequence: Vec<i64>,
    event_type: Vec<String>,
    event_version: Vec<String>,
    payload: Vec<String>,
    metadata: Vec<String>,
}

impl Staged {
    fn of(chunk: &[Vec<Row>], n: &mut i64) -> Self {
        let mut staged = Self::default();
        for command in chunk {
            for (index, row) in command.iter().enumerate() {
                *n += 1;
                staged.n.push(*n);
                staged.last_of_command.push(index + 1 == command.len());
                staged.event_id.push(row.event_id);
                staged.aggregate_type.push(row.aggregate_type);
                staged.aggregate_id.push(row.aggregate_id.clone());
                staged.sequence.push(row.sequence);
                staged.event_type.push(row.event_type.clone());
                staged.event_version.push(row.event_version.clone());
                staged.payload.push(row.payload.clone());
                staged.metadata.push(row.metadata.clone());
            }
        }
        staged
    }

    async fn write(self, connection: &mut PgConnection) {
        sqlx::query(STAGE)
            .bind(self.n)
            .bind(self.last_of_command)
            .bind(self.event_id)
            .bind(self.aggregate_type)
            .bind(self.aggregate_id)
            .bind(self.sequence)
            .bind(self.event_type)
            .bind(self.event_version)
            .bind(self.payload)
            .bind(self.metadata)
            .execute(connection)
            .await
            .unwrap();
    }
}
