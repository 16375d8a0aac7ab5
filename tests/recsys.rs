//! Recommender training through a real driver, where sessions matter: two
//! sessions training the same name at once get two versions, a training
//! cancelled with Ctrl-C (pg_cancel_backend) stops promptly and leaves no
//! model, and tune() says what each trial did (NOTICEs carry timings, so they
//! are read here rather than in a golden file) and stops on Ctrl-C too.

mod common;

use postgres::Client;
use postgres::error::SqlState;

const DB: &str = "pgrec_recsys_driver";

/// The interactions both tests train on, created once (the tests run in parallel).
fn setup(c: &mut Client) {
    static ONCE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        c.batch_execute(
            "DROP TABLE IF EXISTS clicks;
             CREATE TABLE clicks AS
             SELECT u AS user_id, (u * 7 + j * 13) % 500 AS item_id
             FROM generate_series(1, 2000) u, generate_series(1, 20) j",
        )
        .unwrap();
        *done = true;
    }
}

/// Cancels `c`'s statement 1.5 s from now, from another session; the
/// handle says whether pg_cancel_backend found it.
fn cancel_soon(c: &mut Client) -> std::thread::JoinHandle<bool> {
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    std::thread::spawn(move || {
        let mut other = common::client(DB).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        other.query_one("SELECT pg_cancel_backend($1)", &[&pid]).unwrap().get::<_, bool>(0)
    })
}

#[test]
fn concurrent_trainings_of_one_name_make_two_versions() {
    let Some(mut c) = common::client(DB) else { return };
    setup(&mut c);
    let train = || {
        std::thread::spawn(|| {
            let mut c = common::client(DB).unwrap();
            c.batch_execute("SET client_min_messages = warning").unwrap();
            let row = c
                .query_one(
                    "SELECT version FROM train('both', 'bpr', 'clicks', '{\"factors\": 8, \"iterations\": 5}')",
                    &[],
                )
                .unwrap();
            row.get::<_, i32>(0)
        })
    };
    let (a, b) = (train(), train());
    let mut got = vec![a.join().unwrap(), b.join().unwrap()];
    got.sort();
    assert_eq!(got, vec![1, 2]);
    let deployed: i64 =
        c.query_one("SELECT count(*) FROM pgrec.model_versions WHERE name = 'both' AND deployed", &[]).unwrap().get(0);
    assert_eq!(deployed, 1);
}

#[test]
fn cancel_stops_training_and_leaves_no_model() {
    let Some(mut c) = common::client(DB) else { return };
    setup(&mut c);
    let canceller = cancel_soon(&mut c);
    let started = std::time::Instant::now();
    let e = c
        .batch_execute("SET client_min_messages = warning; SELECT * FROM train('cancelled', 'bpr', 'clicks', '{\"iterations\": 10000}')")
        .expect_err("training 10,000 epochs should have been cancelled");
    assert!(canceller.join().unwrap(), "pg_cancel_backend found the session");
    assert_eq!(e.code(), Some(&SqlState::QUERY_CANCELED), "{e}");
    assert!(started.elapsed().as_secs() < 30, "cancel took {:?}", started.elapsed());
    let n: i64 = c.query_one("SELECT count(*) FROM pgrec.model_versions WHERE name = 'cancelled'", &[]).unwrap().get(0);
    assert_eq!(n, 0);
}

/// A connection whose NOTICEs land in the returned list.
fn listening() -> Option<(Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>)> {
    common::client(DB)?;
    let base = std::env::var("PGREC_TEST_URL").ok()?;
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = heard.clone();
    let mut config: postgres::Config = format!("{base} dbname={DB}").parse().unwrap();
    config.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    Some((config.connect(postgres::NoTls).unwrap(), heard))
}

#[test]
fn tune_reports_each_trial_and_stops_on_cancel() {
    let Some((mut c, heard_all)) = listening() else { return };
    setup(&mut c);
    let row = c
        .query_one(
            "SELECT version, params FROM tune('tuned', 'bpr', 'clicks', '{\"learning_rate\": [0.05, 10]}',
                                               params => '{\"iterations\": 2, \"factors\": 4}')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    let heard = heard_all.lock().unwrap().clone();
    let said = |start: &str| heard.iter().find(|m| m.starts_with(start)).cloned().unwrap_or_default();
    assert_eq!(said("tuning"), "tuning bpr \"tuned\" on 40000 interactions of 2000 users and 500 items");
    assert_eq!(
        said("2 trials"),
        "2 trials (grid), each trained on the training part less 20% of each user's rows, scored by validation recall@20 (higher is better) on those"
    );
    let first = said("trial 1/2");
    assert!(
        first
            .starts_with("trial 1/2: {\"factors\":4,\"iterations\":2,\"learning_rate\":0.05}: validation recall@20 0."),
        "{first}"
    );
    assert!(first.ends_with(" s"), "{first}");
    assert_eq!(
        said("trial 2/2"),
        "trial 2/2: {\"factors\":4,\"iterations\":2,\"learning_rate\":10}: bpr training diverged: the loss is NaN after epoch 1; nothing was stored"
    );
    assert_eq!(
        said("trial 1 chose"),
        "trial 1 chose {\"factors\":4,\"iterations\":2,\"learning_rate\":0.05}; training it on the whole training part"
    );
    assert!(said("bpr epoch 2/2").starts_with("bpr epoch 2/2: loss "), "{heard:?}");
    // With timestamps the validation rows are each user's latest.
    c.query_one(
        "SELECT version FROM tune('tuned_ts', 'popular', 'SELECT user_id, item_id, item_id AS ts FROM clicks', '{}')",
        &[],
    )
    .expect_err("popular has no params to search");
    c.query_one(
        "SELECT version FROM tune('tuned_ts', 'item_knn', 'SELECT user_id, item_id, item_id AS ts FROM clicks',
                                  '{\"neighbors\": [5, 10]}', ts_column => 'ts')",
        &[],
    )
    .unwrap();
    let heard_now = heard_all.lock().unwrap().clone();
    assert!(
        heard_now.iter().any(|m| m
            == "2 trials (grid), each trained on the training part less 20% of each user's rows (their latest), scored by validation recall@20 (higher is better) on those"),
        "{heard_now:?}"
    );

    // Ctrl-C during the trials stops the search and stores nothing.
    let canceller = cancel_soon(&mut c);
    let started = std::time::Instant::now();
    let e = c
        .batch_execute(
            "SET client_min_messages = warning;
             SELECT * FROM tune('cancelled_tune', 'bpr', 'clicks', '{\"factors\": {\"min\": 4, \"max\": 64}}', 1000,
                                '{\"iterations\": 200}')",
        )
        .expect_err("1,000 trials of 200 epochs should have been cancelled");
    assert!(canceller.join().unwrap(), "pg_cancel_backend found the session");
    assert_eq!(e.code(), Some(&SqlState::QUERY_CANCELED), "{e}");
    assert!(started.elapsed().as_secs() < 30, "cancel took {:?}", started.elapsed());
    let n: i64 =
        c.query_one("SELECT count(*) FROM pgrec.model_versions WHERE name = 'cancelled_tune'", &[]).unwrap().get(0);
    assert_eq!(n, 0);
}
