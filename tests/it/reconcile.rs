//! `realty reconcile` against the local AWS: a corrupted market item is repaired and the
//! change reported, a second run changes nothing, and a run beside the metrics function
//! writing leaves the figures of one clean delivery.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use aws_sdk_dynamodb::types::AttributeValue;
use libtest_mimic::Failed;
use realty_aws::functions::metrics::handle_event;
use realty_metrics::items::LIVE_SORT_KEY;
use realty_metrics::ports::MarketStore as _;
use realty_metrics::reconcile::{MarketScan as _, reconcile};
use realty_tests::{Explain, TestAws};

use crate::metrics::{
    Crashing, batch, deliver, discard_scenario, ensure, fresh_function, operator, part, tables,
};

crate::async_tests!(
    reconcile_repairs_a_corrupted_market_reports_it_and_a_second_run_changes_nothing,
    reconcile_beside_metrics_writing_leaves_the_true_figures,
    reconcile_leaves_the_markets_of_a_batch_left_part_way_to_the_next_batch,
);

async fn reconcile_repairs_a_corrupted_market_reports_it_and_a_second_run_changes_nothing(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let operator = operator(&aws, &resources).await;
    deliver(&function, batch(40)).await?;
    let keys = operator.markets.market_keys().await?;
    let clean = operator.markets.get_aggregates(&keys).await?;
    let key = "city#nashville-tn#all".to_owned();
    let before = clean
        .get(&key)
        .ok_or("no Nashville market")?
        .aggregate
        .clone();
    ensure(before.active > 1, format!("{} active", before.active))?;

    // Drift as a lost listing write leaves it: one listing counted twice. The item's
    // bookkeeping is untouched, so nothing but a recomputation can see it.
    let client = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
    client
        .update_item()
        .table_name(&resources.market_table)
        .key("pk", AttributeValue::S(key.clone()))
        .key("sk", AttributeValue::S(LIVE_SORT_KEY.to_owned()))
        .update_expression("SET active = active + :one, pending = pending + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .explain("UpdateItem")?;

    let dry = reconcile(&operator.listings, &operator.markets, None, true).await?;
    ensure(
        dry.repairs.len() == 1 && dry.repairs[0].market == key,
        format!("dry run: {:?}", dry.repairs),
    )?;
    let drifts: Vec<(&str, String, String)> = dry.repairs[0]
        .drifts
        .iter()
        .map(|d| (d.figure, d.stored.clone(), d.recomputed.clone()))
        .collect();
    ensure(
        drifts
            == [
                (
                    "active",
                    (before.active + 1).to_string(),
                    before.active.to_string(),
                ),
                (
                    "pending",
                    (before.pending + 1).to_string(),
                    before.pending.to_string(),
                ),
            ],
        format!("reported drifts: {drifts:?}"),
    )?;
    ensure(
        operator
            .markets
            .get_aggregates(std::slice::from_ref(&key))
            .await?[&key]
            .aggregate
            .active
            == before.active + 1,
        "the dry run wrote",
    )?;

    let repaired = reconcile(
        &operator.listings,
        &operator.markets,
        Some("nashville-tn"),
        false,
    )
    .await?;
    ensure(
        repaired.repairs == dry.repairs && repaired.busy.is_empty(),
        format!("repair: {repaired:?}"),
    )?;
    let after = operator.markets.get_aggregates(&keys).await?;
    for (k, item) in &clean {
        ensure(
            after[k].aggregate == item.aggregate,
            format!("{k}: not the figures of the clean delivery"),
        )?;
    }
    // The stored figures readers see (`figures`) were rewritten with the counts.
    let live = operator.markets.live(&key).await?.ok_or("no live item")?;
    ensure(
        live.figures()?.active_listings == before.active,
        format!(
            "figures.active_listings {}",
            live.figures()?.active_listings
        ),
    )?;

    let again = reconcile(&operator.listings, &operator.markets, None, false).await?;
    ensure(
        again.repairs.is_empty() && again.busy.is_empty() && again.checked == keys.len(),
        format!("second run: {again:?}"),
    )?;
    Ok(())
}

/// Reconcile runs again and again while the metrics function applies a stream of batches
/// to the same markets: every repair is conditional and skips markets a batch is writing,
/// so at the end the tables are those of the same batches without reconcile.
async fn reconcile_beside_metrics_writing_leaves_the_true_figures(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let event = batch(60);
    let n = event.records.len();
    let batches: Vec<_> = (0..6)
        .map(|i| part(&event, n * i / 6..n * (i + 1) / 6))
        .collect();
    let (clean_resources, clean) = fresh_function(&aws).await?;
    for b in &batches {
        deliver(&clean, b.clone()).await?;
    }
    let expected = tables(&aws, &clean_resources).await?;

    let (resources, function) = fresh_function(&aws).await?;
    let operator = operator(&aws, &resources).await;
    let writing = async {
        for b in &batches {
            deliver(&function, b.clone()).await?;
        }
        Ok::<_, Failed>(())
    };
    let reconciling = async {
        let mut runs = 0;
        let mut repairs = 0;
        for _ in 0..6 {
            let report = reconcile(&operator.listings, &operator.markets, None, false).await?;
            runs += 1;
            repairs += report.repairs.len();
        }
        Ok::<_, Failed>((runs, repairs))
    };
    let (written, reconciled) = tokio::join!(writing, reconciling);
    written?;
    let (runs, repairs) = reconciled?;
    ensure(
        repairs == 0,
        format!("{repairs} repairs in {runs} runs of a market without drift"),
    )?;
    let (listings, markets) = tables(&aws, &resources).await?;
    ensure(listings == expected.0, "listing items differ")?;
    ensure(markets == expected.1, "market items differ")?;
    Ok(())
}

/// A batch Lambda discarded after its market writes but before all its listing states: the
/// markets are ahead of the listings until the shard's next batch finishes it from the
/// journal. A reconcile run meanwhile must not "repair" those markets back to the listing
/// states (the next batch would then skip them as already written, and the batch's
/// contributions would be lost): it reports them busy, and after the next batch the items
/// are those of one clean delivery.
async fn reconcile_leaves_the_markets_of_a_batch_left_part_way_to_the_next_batch(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let ([first, discarded, next], expected) = discard_scenario(&aws).await?;

    let (resources, function) = fresh_function(&aws).await?;
    let operator = operator(&aws, &resources).await;
    deliver(&function, first.clone()).await?;
    // Count the discarded batch's writes on a clean copy: the last two are the listing
    // states (the crashing store writes half of them, then fails) and the journal's delete.
    let (_, counter) = fresh_function(&aws).await?;
    deliver(&counter, first.clone()).await?;
    let counting = Crashing {
        real: &counter,
        writes: AtomicUsize::new(0),
        fail_at: usize::MAX,
        discard: false,
    };
    let (response, _) = handle_event(&counting.ports(), discarded.clone()).await;
    ensure(
        response.batch_item_failures.is_empty(),
        "counting run failed",
    )?;
    let crashing = Crashing {
        real: &function,
        writes: AtomicUsize::new(0),
        fail_at: counting.writes() - 2,
        discard: true,
    };
    for _ in 0..2 {
        let (response, _) = handle_event(&crashing.ports(), discarded.clone()).await;
        ensure(
            !response.batch_item_failures.is_empty(),
            "the batch was not left part-way",
        )?;
    }
    let report = reconcile(&operator.listings, &operator.markets, None, false).await?;
    ensure(
        !report.busy.is_empty() && report.repairs.is_empty(),
        format!("reconcile beside a batch left part-way: {report:?}"),
    )?;
    deliver(&function, next.clone()).await?;
    ensure(
        tables(&aws, &resources).await? == expected,
        "after the next batch: items differ from one clean delivery",
    )?;
    let report = reconcile(&operator.listings, &operator.markets, None, false).await?;
    ensure(
        report.busy.is_empty() && report.repairs.is_empty(),
        format!("after the next batch: {report:?}"),
    )
}
