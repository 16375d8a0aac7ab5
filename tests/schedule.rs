//! Scheduled retraining with pg_cron: a job that runs `train()` every minute
//! adds a version, which the deploy-if-better rule deploys over a weaker one
//! (champion and challenger), and the deployment history records it.
//! `./scripts/test.sh` loads pg_cron in the test cluster where the
//! PostgreSQL has it (Debian's postgresql-15-cron) and says so in
//! `PGREC_CRON`; without it this test says why it does not run.

mod common;

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

#[test]
fn a_pg_cron_job_retrains_and_the_better_version_is_deployed() {
    match std::env::var("PGREC_CRON").as_deref() {
        Ok("1") => {}
        Ok(_) => {
            eprintln!("skipped: pg_cron is not available for this PostgreSQL (PGREC_CRON=0)");
            return;
        }
        Err(_) => {
            eprintln!("skipped: PGREC_CRON is not set (./scripts/test.sh sets it)");
            return;
        }
    }
    let Some(mut c) = common::client("pgrec_schedule") else { return };
    let base = std::env::var("PGREC_TEST_URL").unwrap();
    // The scheduler's own database (cron.database_name).
    let mut cron = Client::connect(&format!("{base} dbname=postgres"), NoTls).unwrap();
    cron.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_cron").unwrap();
    cron.batch_execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pgrec_retrain_test'").unwrap();

    c.batch_execute(
        "SET client_min_messages = warning;
         CREATE TABLE clicks AS
         SELECT u AS user_id, ((u * 7 + j * 3) % 20) * 4 + u % 4 AS item_id
         FROM generate_series(1, 200) u, generate_series(0, 11) j;
         SELECT * FROM train('nightly', 'bpr', 'clicks', '{\"factors\": 2, \"iterations\": 1}');",
    )
    .unwrap();
    let job: i64 = cron
        .query_one(
            "SELECT cron.schedule_in_database('pgrec_retrain_test', '* * * * *',
                 $$SELECT * FROM public.train('nightly', 'bpr', 'clicks', '{\"factors\": 8, \"iterations\": 20}')$$,
                 'pgrec_schedule')",
            &[],
        )
        .unwrap()
        .get(0);
    // The job starts at the next minute: wait for a version it made.
    let start = Instant::now();
    let versions = loop {
        let n: i64 = c.query_one("SELECT count(*) FROM pgrec.models WHERE name = 'nightly'", &[]).unwrap().get(0);
        if n >= 2 || start.elapsed() > Duration::from_secs(150) {
            break n;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    cron.batch_execute(&format!("SELECT cron.unschedule({job})")).unwrap();
    let runs: Vec<(String, Option<String>)> = cron
        .query("SELECT status, return_message FROM cron.job_run_details WHERE jobid = $1 ORDER BY runid", &[&job])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(versions >= 2, "no version from the job within 150 s; its runs: {runs:?}");
    assert!(runs.iter().any(|(s, _)| s == "succeeded"), "{runs:?}");

    // The scheduled version beats the weak first one, so it was deployed;
    // the history names its training.
    let (deployed, recall_2, recall_1): (i32, f64, f64) = {
        let r = c
            .query_one(
                "SELECT (SELECT version FROM pgrec.models WHERE name = 'nightly' AND deployed),
                        (SELECT recall_20 FROM pgrec.models WHERE name = 'nightly' AND version = 2)::float8,
                        (SELECT recall_20 FROM pgrec.models WHERE name = 'nightly' AND version = 1)::float8",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert!(recall_2 > recall_1 + 0.2, "{recall_2} vs {recall_1}");
    assert_eq!(deployed, 2);
    let history: Vec<(i32, String)> = c
        .query("SELECT version, action FROM pgrec.deployments WHERE name = 'nightly'", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(history[..2], [(1, "train".to_string()), (2, "train".to_string())]);
    // And a rollback returns to the version the job replaced.
    let back: i32 = c.query_one("SELECT rollback_model('nightly')", &[]).unwrap().get(0);
    assert_eq!(back, 1);
}
