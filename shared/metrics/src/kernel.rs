//! The batch's compute alone, what `realty bench` sets beside DuckDB and PySpark: decode with
//! every check, plan onto the listings' states, apply each scope's contributions in stream
//! order, and the figures a batch leaves each market with. The same functions the workflow
//! ([`crate::process`]) runs, over state held in memory (states and aggregates moved in and
//! out, never copied), without what the workflow adds around them: no journal, no store
//! encoding, no listings of interest, no snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use crate::aggregate::{MarketAggregate, MarketFigures};
use crate::batch::plan_batch;
use crate::process::{InputRecord, decode_records};
use realty_model::scope::Scope;
use realty_model::state::StoredStates;

/// What the kernel holds between batches: every listing's state and every scope's aggregate.
#[derive(Debug, Default)]
pub struct Kernel {
    states: StoredStates,
    aggregates: HashMap<Scope, MarketAggregate>,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelBatch {
    /// Records set aside as poison.
    pub rejected: usize,
}

impl Kernel {
    /// Runs one batch of `shard`'s records.
    pub fn apply_batch(&mut self, shard: &str, records: &[InputRecord]) -> KernelBatch {
        let decoded = decode_records(shard, records);
        let done = KernelBatch {
            rejected: decoded.poison.len(),
        };
        let plan = plan_batch(decoded.events, &self.states);
        for (scope, contributions) in plan.scopes {
            let aggregate = self.aggregates.entry(scope).or_default();
            for (_, observed_at, contribution) in &contributions {
                aggregate.apply(contribution);
                aggregate.advance_to(*observed_at);
            }
            // The figures a batch leaves a market with, recorded as its open day's close (as
            // the workflow writes each market once a batch).
            if let Some(as_of) = aggregate.as_of {
                let figures = aggregate.figures();
                aggregate.record_close(as_of.date_naive(), &figures);
            }
        }
        for state in plan.states {
            self.states
                .insert(state.listing.id.as_str().to_owned(), Arc::new(state));
        }
        done
    }

    /// The figures of every scope, by key ([`Scope::key`]).
    pub fn figures(&self) -> Vec<(String, MarketFigures)> {
        let mut out: Vec<(String, MarketFigures)> = self
            .aggregates
            .iter()
            .map(|(scope, aggregate)| (scope.key(), aggregate.figures()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::memory::MemoryStores;
    use crate::process::process_batch;
    use crate::tests::{SHARD, block_on, events_of, records_of, step_strategy};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The kernel computes what the whole workflow stores: every scope's figures the
        /// same, whatever the batching.
        #[test]
        fn the_kernel_leaves_every_scope_as_the_workflow_does(
            steps in prop::collection::vec(step_strategy(12), 1..120),
            batch in 1usize..40,
        ) {
            let records = records_of(&events_of(&steps));
            let mut kernel = Kernel::default();
            let stores = MemoryStores::default();
            let ports = stores.ports();
            for chunk in records.chunks(batch) {
                prop_assert_eq!(kernel.apply_batch(SHARD, chunk).rejected, 0);
                let outcome = block_on(process_batch(&ports, SHARD, chunk));
                prop_assert!(outcome.error.is_none());
            }
            let stored: Vec<(String, crate::aggregate::MarketFigures)> = stores
                .aggregates
                .lock()
                .expect("not poisoned")
                .iter()
                .map(|(key, item)| (key.clone(), item.aggregate.figures()))
                .collect();
            prop_assert_eq!(kernel.figures(), stored);
        }
    }
}
