//! The throwaway PostgreSQL cluster HQ's storage tests are to run on (issue #17): it
//! starts, answers SQL, and keeps what was committed across a crash of its server — what
//! the test that stops PostgreSQL under load relies on.

#[test]
fn a_throwaway_cluster_answers_and_keeps_commits_across_a_crash() {
    let Some(mut pg) =
        kassa_tests::pg::PgCluster::start("a_throwaway_cluster_answers_and_keeps_commits_across_a_crash")
    else {
        return;
    };
    assert_eq!(pg.psql("SELECT 1 + 1"), "2");
    pg.psql("CREATE TABLE progress (store INTEGER PRIMARY KEY, upto BIGINT NOT NULL)");
    pg.psql("INSERT INTO progress VALUES (1, 42)");
    pg.stop();
    pg.resume();
    assert_eq!(pg.psql("SELECT upto FROM progress WHERE store = 1"), "42");
    assert!(pg.url().starts_with("postgres://kassa@127.0.0.1:"), "{}", pg.url());
}
