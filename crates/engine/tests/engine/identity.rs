//! Rule 8: every change has a sync identity: an op id that a retried write keeps and a newer
//! change replaces, and a hybrid-logical-clock stamp that orders changes without trusting wall
//! clocks. (The driver also checks on every write that op ids are `<node>-<serial>` and that a
//! key's stamps only grow.)

use crate::support::*;
use persist_engine::{Engine, WriteError};
use persist_protocol::Hlc;

/// Epoch milliseconds of the runtime clock's origin in these tests.
const ORIGIN_MS: u64 = 1_700_000_000_000;

fn driver() -> Driver {
    let mut d = Driver::new(quiet_config());
    d.engine = Engine::new(quiet_config(), 1).unwrap().with_node("tab-a", ORIGIN_MS);
    d
}

#[test]
fn a_retried_write_keeps_its_op_id_and_a_newer_change_gets_a_new_one() {
    let mut d = driver();
    let a = key("files", "a");
    d.scripted.push_back(Some(WriteError::transient("busy")));
    d.put(&a, "1");
    d.advance_to(ms(300));
    d.advance_to(ms(2_000));
    let ids: Vec<String> = d.writes.iter().map(|w| w.batch.ops[0].op_id.to_string()).collect();
    assert_eq!(ids, ["tab-a-1", "tab-a-1"], "the failed write and its retry share the op id");
    assert!(d.writes[0].result.as_ref().unwrap().is_err());

    d.put(&a, "2");
    d.put(&a, "3"); // coalesces into the waiting change
    d.flush();
    let last = &d.writes.last().unwrap().batch.ops[0];
    assert_eq!((last.op_id.as_str(), last.serial), ("tab-a-3", 3));
}

#[test]
fn stamps_carry_wall_time_and_order_changes_within_one_millisecond() {
    let mut d = driver();
    d.advance_to(ms(5));
    d.put(&key("files", "a"), "1");
    d.put(&key("files", "b"), "1");
    d.flush();
    let stamps: Vec<Hlc> = d.writes[0].batch.ops.iter().map(|op| op.hlc.clone()).collect();
    let wall = ORIGIN_MS + 5;
    assert_eq!(
        stamps,
        [
            Hlc { wall_ms: wall, counter: 0, node: "tab-a".into() },
            Hlc { wall_ms: wall, counter: 1, node: "tab-a".into() }
        ]
    );
    assert_eq!(d.engine.hlc(), &stamps[1], "the clock holds the newest stamp");
}

#[test]
fn an_observed_stamp_orders_later_changes_after_it_whatever_the_wall_clock() {
    let mut d = driver();
    // Another device, its clock an hour ahead of ours.
    let remote = Hlc { wall_ms: ORIGIN_MS + 3_600_000, counter: 4, node: "phone".into() };
    d.engine.observe_hlc(d.now, &remote);
    d.advance_to(ms(10));
    d.put(&key("files", "a"), "mine");
    d.flush();
    let stamp = &d.writes[0].batch.ops[0].hlc;
    assert!(stamp > &remote, "{stamp} must order after {remote}");
    assert_eq!(stamp.wall_ms, remote.wall_ms, "the logical part moves on, the wall part waits");
}
