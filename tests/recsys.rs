//! Recommender training through a real driver, where sessions matter: two
//! sessions training the same name at once get two versions, and a training
//! cancelled with Ctrl-C (pg_cancel_backend) stops promptly and leaves no model.

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
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let canceller = std::thread::spawn(move || {
        let mut other = common::client(DB).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        other.query_one("SELECT pg_cancel_backend($1)", &[&pid]).unwrap().get::<_, bool>(0)
    });
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
