//! The poll run's summary, records and bounds.

use super::*;

/// A poll of 500 markets logs its totals and the markets with news, at most 100: the
/// whole summary passed CloudWatch's 256 KB event.
#[test]
fn the_log_line_names_the_markets_with_news_only() {
    let summary_with = |failing: usize| PollSummary {
        markets: 500,
        per_market: (0..500)
            .map(|i| MarketSummary {
                market: format!("market-{i}"),
                error: (i < failing).then(|| "503".to_owned()),
                ..MarketSummary::default()
            })
            .collect(),
        ..PollSummary::default()
    };
    let logged = summary_with(3).for_log();
    assert_eq!(logged.markets, 500);
    assert_eq!(logged.per_market.len(), 3);
    assert!(serde_json::to_string(&logged).expect("json").len() < 10_000);
    assert_eq!(
        summary_with(250).for_log().per_market.len(),
        MAX_LOGGED_MARKETS
    );
}

type TestPoller = Poller<
    crate::memory::MemoryStream,
    crate::memory::MemoryPollStates,
    realty_model::markets::MemoryConfigStore,
    (),
>;

/// A poller of Zillow (at an address never asked) watching `market` from `sources`.
async fn poller_watching(sources: &[&str], run_budget: std::time::Duration) -> TestPoller {
    let config = realty_model::markets::MemoryConfigStore::default();
    config
        .put_market(&realty_model::markets::WatchedMarket::new(
            "nashville-tn",
            sources,
            60,
        ))
        .await
        .expect("watched");
    Poller {
        client: crate::fetch::http_client(std::time::Duration::from_secs(1)).expect("client"),
        endpoints: vec![SourceEndpoint {
            kind: SourceKind::Zillow,
            base_url: "http://127.0.0.1:9".into(),
            key: "key".into(),
            reso_auth: None,
            reso_full_read_every: chrono::TimeDelta::hours(24),
            crawler: None,
        }],
        unkeyed: Vec::new(),
        secret: "secret".into(),
        policy: HttpPolicy::default(),
        limiters: BTreeMap::new(),
        publisher: crate::memory::MemoryStream::default(),
        states: crate::memory::MemoryPollStates::default(),
        config,
        raw: (),
        concurrency: 1,
        delisting_guard: DelistingGuard::default(),
        run_budget,
    }
}

/// Once the run's time is spent no read starts: each is reported out of time and not
/// recorded as polled, so the next run reads it (before, a run of many slow markets went
/// past the function's timeout and Lambda stopped it before it charged or recorded).
#[tokio::test]
async fn no_read_starts_once_the_run_s_time_is_spent() {
    let poller = poller_watching(&["zillow"], std::time::Duration::ZERO).await;
    let now = Utc::now();
    let summary = poller.poll(&PollRequest::default(), now).await;
    assert!(summary.reads_out_of_time > 0, "{summary:?}");
    assert_eq!(summary.reads_out_of_time, summary.markets);
    assert_eq!((summary.pages, summary.failed_markets), (0, 0));
    let recorded = poller.config.load(&month_of(now)).await.expect("config");
    assert!(recorded.polls.is_empty(), "{:?}", recorded.polls);
}

/// `realty invoke poller` naming a watched market reads it under the market's filter
/// (its state is of that filter's listings); a market not watched, under none.
#[tokio::test]
async fn a_named_market_is_read_under_its_watched_filter() {
    let poller = poller_watching(&["zillow"], POLL_RUN_BUDGET).await;
    let mut watched = realty_model::markets::WatchedMarket::new("nashville-tn", &["zillow"], 60);
    watched.min_price = Some(100_000);
    watched.max_price = Some(900_000);
    poller.config.put_market(&watched).await.expect("watched");
    let now = Utc::now();
    let snapshot = poller.config.load(&month_of(now)).await.expect("config");
    let request = PollRequest {
        markets: vec!["nashville-tn".into(), "austin-tx".into()],
        rentals: false,
        anti_entropy: false,
    };
    let wanted = poller.wanted(&request, &snapshot, now);
    let filter_of = |market: &str| {
        wanted
            .iter()
            .find(|(kind, m, _, _)| *kind == SourceKind::Zillow && *m == market)
            .map(|(_, _, filter, _)| filter.clone())
            .expect("read")
    };
    assert_eq!(filter_of("nashville-tn"), watched.filter());
    assert_ne!(filter_of("nashville-tn"), SearchFilter::default());
    assert_eq!(filter_of("austin-tx"), SearchFilter::default());
}

/// A market of a source the stack does not reach (RESO without ResoApiUrl) raises the
/// unpolled-source alarm, as one without a key does; before, it was only logged.
#[tokio::test]
async fn a_source_the_stack_does_not_reach_counts_as_unpolled() {
    let poller = poller_watching(&["reso"], POLL_RUN_BUDGET).await;
    let summary = poller.poll(&PollRequest::default(), Utc::now()).await;
    assert!(
        summary
            .sources
            .iter()
            .any(|s| s.status == SourceStatus::NotConfigured),
        "{summary:?}"
    );
    assert_eq!(summary.sources_without_key, 1);
}

/// Failed polls keep the time they began failing, so the lake's freshness check fails
/// while a revoked key fails every read (`polled_at` moved on with each); a poll whose
/// reads all succeed clears it.
#[test]
fn failing_polls_remember_since_when() {
    let at = |hour: i64| DateTime::UNIX_EPOCH + chrono::Duration::hours(hour);
    let read = |error: Option<&str>| MarketSummary {
        source: "zillow".into(),
        market: "nashville-tn".into(),
        error: error.map(str::to_owned),
        ..MarketSummary::default()
    };
    let (ok, refused) = (read(None), read(Some("401 Unauthorized")));
    let first = poll_record("zillow", "nashville-tn", &[&ok], None, at(1));
    assert_eq!((first.failed_since, first.last_good_read()), (None, at(1)));
    // The rental read fails: the poll failed.
    let failing = poll_record(
        "zillow",
        "nashville-tn",
        &[&ok, &refused],
        Some(&first),
        at(2),
    );
    assert_eq!(failing.failed_since, Some(at(2)));
    let still = poll_record("zillow", "nashville-tn", &[&refused], Some(&failing), at(5));
    assert_eq!((still.polled_at, still.last_good_read()), (at(5), at(2)));
    let back = poll_record("zillow", "nashville-tn", &[&ok], Some(&still), at(6));
    assert_eq!((back.failed_since, back.last_good_read()), (None, at(6)));
}
