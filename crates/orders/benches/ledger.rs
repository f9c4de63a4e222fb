//! The stock ledger's decision step, without I/O: how many taps one offer's
//! writer can decide per second before any database work.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::StockCounts;
use orders::{Decision, OfferTerms, StockLedger, Tap};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn terms(limit: u32) -> OfferTerms {
    OfferTerms {
        starts_at: None,
        ends_at: None,
        per_buyer_limit: limit,
        buyers: domain::Buyers::Anyone,
        hold: std::time::Duration::from_millis(600_000),
    }
}

fn decide(c: &mut Criterion) {
    let buyers: Vec<String> = (0..100_000).map(|i| format!("gst_buyer{i}")).collect();
    let mut group = c.benchmark_group("ledger_decide");
    group.throughput(Throughput::Elements(1));

    // Every tap accepted: a new buyer each time (the hot path of a drop).
    group.bench_function("accepted", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(buyers.len() as u64);
                let mut ledger = StockLedger::new(terms(1), StockCounts::allot(n as u32), None);
                let start = Instant::now();
                for (i, buyer) in buyers.iter().take(n as usize).enumerate() {
                    let d = ledger.decide(Tap::by(sub(buyer), 1), ms(i as i64));
                    debug_assert!(matches!(d, Decision::Held(_)));
                    black_box(d);
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });

    // Sold out: answered from memory, nothing allocated.
    group.bench_function("sold_out", |b| {
        let mut ledger = StockLedger::new(terms(5), StockCounts::allot(0), None);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % buyers.len();
            black_box(ledger.decide(Tap::by(sub(&buyers[i]), 1), ms(0)))
        })
    });

    // Over the per-buyer limit: the buyer's tally is looked up and refused.
    group.bench_function("over_limit", |b| {
        let mut ledger = StockLedger::new(terms(1), StockCounts::allot(1_000_000), None);
        for buyer in &buyers {
            ledger.decide(Tap::by(sub(buyer), 1), ms(0));
        }
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % buyers.len();
            black_box(ledger.decide(Tap::by(sub(&buyers[i]), 1), ms(1)))
        })
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}

fn sub(raw: &str) -> domain::Subject {
    domain::Subject::from_trusted(raw)
}
