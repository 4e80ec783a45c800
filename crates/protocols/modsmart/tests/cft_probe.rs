use quorate_modsmart::{Config, ModSmart};
use quorate_sim::conformance::Suite;

#[test]
fn probe() {
    let suite = Suite::<ModSmart>::new().with_config(Config { checkpoint_period: 16, ..Config::default() }).crash_model();
    let mut base = suite.scenario(0, 12);
    let bound = <ModSmart as quorate_core::Protocol>::liveness_bound(&base.config, base.f);
    base.duration = base.duration.max((base.settle + bound).mul_f64(1.0 / 0.6));
    let sc = quorate_sim::campaign_scenario(&base, 103).judged();
    let mut sim = quorate_sim::Simulation::new(sc).unwrap();
    let mut last = 0;
    while sim.step() {
        let t = sim.now().as_nanos() / 100_000_000;
        if t != last {
            last = t;
            let ex: Vec<String> = (0..3).map(|r| sim.replica(r).map_or("down".into(), |m| format!("{}", m.executed()))).collect();
            eprintln!("t={:.1}s executed {:?}", t as f64 / 10.0, ex);
        }
    }
    let r = sim.report();
    eprintln!("{}", r.summary());
    eprintln!("{:?}", r.rejected);
    panic!("show");
}
