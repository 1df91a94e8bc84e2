//! The alert feed: every published alert kept in the market table for
//! [`ALERT_FEED_DAYS`], so the API can list a market's recent alerts, by type, newest first
//! (docs/alerts.md, "The alert feed"). One item per alert:
//!
//! - `pk` = `alerts#<market>` ([`feed_key`]);
//! - `sk` = `<alert_type>#<observed_at, to the second>#<FNV-1a 64 of alert_id, 16 hex>`
//!   ([`feed_sort_key`]): a Query on `begins_with(sk, "price_drop#")` reads one type in
//!   time order, and two alerts of the same second stay apart;
//! - the alert's JSON body exactly as SNS carried it, and a TTL (`expires_at`).
//!
//! Keys are functions of the alert alone, so writing an alert again (a re-delivered record)
//! rewrites the same item. The same keys hold the alert's claim while it is being published
//! (`state = pending`, a lease, no body: [`super::ports::AlertClaimStore`]); the feed item
//! written over it once SNS took the alert is its mark (`state = published`). Readers leave
//! out items under a lease ([`CLAIM_LEASE_ATTRIBUTE`](realty_model::ports::CLAIM_LEASE_ATTRIBUTE)).

use std::hash::Hasher;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::message::{AlertMessage, MAX_MESSAGE_BYTES};
use super::rules::AlertKind;
use realty_model::ports::MAX_ITEM_BYTES;

/// A feed item expires this many days after its alert's `observed_at`.
pub const ALERT_FEED_DAYS: i64 = 30;
/// Prefix of a market's feed partition key.
pub const FEED_KEY_PREFIX: &str = "alerts#";

/// DynamoDB's limit on a partition key.
pub const MAX_PARTITION_KEY_BYTES: usize = 2_048;

// An item holds the body (at most an SNS message: larger alerts are never published, they go
// to the error sink), a partition key of at most 2 KB and a few short attributes: always
// under DynamoDB's item limit, so a published alert always fits the feed.
const _: () = assert!(MAX_MESSAGE_BYTES + MAX_PARTITION_KEY_BYTES + 1_024 < MAX_ITEM_BYTES);

/// One published alert in the market table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFeedItem {
    /// [`feed_key`] of the alert's market.
    pub pk: String,
    /// [`feed_sort_key`] of the alert.
    pub sk: String,
    pub alert_type: AlertKind,
    /// When the pipeline saw the new price (RFC 3339).
    pub observed_at: DateTime<Utc>,
    /// The [`super::message::AlertBody`] JSON, exactly as published to SNS.
    pub body: String,
    /// TTL (epoch seconds): `observed_at` + [`ALERT_FEED_DAYS`].
    pub expires_at: i64,
}

/// Why a published alert has no feed item.
#[derive(Debug, thiserror::Error)]
pub enum FeedItemError {
    #[error(
        "a feed partition key of {0} bytes is over DynamoDB's {MAX_PARTITION_KEY_BYTES}-byte limit"
    )]
    KeyTooLong(usize),
}

/// The feed's partition key of a market (`alerts#nashville-tn`).
pub fn feed_key(market: &str) -> String {
    format!("{FEED_KEY_PREFIX}{market}")
}

/// The feed's sort key of an alert: `price_drop#2026-11-21T18:04:05Z#<16 hex>`. Short
/// whatever the alert id's length (DynamoDB caps sort keys at 1,024 bytes).
pub fn feed_sort_key(alert_type: &str, observed_at: DateTime<Utc>, alert_id: &str) -> String {
    let mut hash = fnv::FnvHasher::default();
    hash.write(alert_id.as_bytes());
    format!(
        "{alert_type}#{}#{:016x}",
        observed_at.format("%Y-%m-%dT%H:%M:%SZ"),
        hash.finish()
    )
}

impl AlertFeedItem {
    /// The feed item of a published message (its market and type are its attributes', the
    /// same as its body's).
    pub fn of(message: &AlertMessage) -> Result<Self, FeedItemError> {
        let pk = feed_key(&message.attributes.market);
        if pk.len() > MAX_PARTITION_KEY_BYTES {
            return Err(FeedItemError::KeyTooLong(pk.len()));
        }
        let alert_type = message.attributes.alert_type;
        Ok(Self {
            pk,
            sk: feed_sort_key(alert_type.as_str(), message.observed_at, &message.alert_id),
            alert_type,
            observed_at: message.observed_at,
            body: message.body.clone(),
            expires_at: (message.observed_at + Duration::days(ALERT_FEED_DAYS)).timestamp(),
        })
    }

    /// When the alert leaves the feed (epoch seconds): [`ALERT_FEED_DAYS`] after its
    /// `observed_at`, in the feed's order, whatever TTL it was stored with (a late write keeps
    /// the item at least a week for its re-deliveries, past that time).
    pub fn leaves_feed_at(&self) -> i64 {
        let window_end = (self.observed_at + Duration::days(ALERT_FEED_DAYS)).timestamp();
        window_end.min(self.expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, body, published};

    #[test]
    fn keys_name_the_market_the_type_the_second_and_the_alert() {
        assert_eq!(feed_key("nashville-tn"), "alerts#nashville-tn");
        // FNV-1a 64 of "a" (its published test vector).
        assert_eq!(
            feed_sort_key("undervalued", at("2026-11-21T18:04:05.999Z"), "a"),
            "undervalued#2026-11-21T18:04:05Z#af63dc4c8601ec8c"
        );
        let item = AlertFeedItem::of(&published(&body(
            "alert#price_drop#zillow:1#2",
            "nashville-tn",
        )))
        .expect("an item");
        assert_eq!(item.pk, "alerts#nashville-tn");
        assert!(
            item.sk.starts_with("price_drop#2026-11-21T18:04:05Z#"),
            "{}",
            item.sk
        );
        assert_eq!(item.alert_type, AlertKind::PriceDrop);
        assert_eq!(item.observed_at, at("2026-11-21T18:04:05.250Z"));
    }

    #[test]
    fn the_item_keeps_the_body_as_published_and_expires_thirty_days_after_the_observation() {
        let message = published(&body("alert#price_drop#zillow:1#2", "nashville-tn"));
        let item = AlertFeedItem::of(&message).expect("an item");
        assert_eq!(item.body, message.body);
        assert_eq!(
            item.expires_at,
            at("2026-12-21T18:04:05Z").timestamp(),
            "observed_at + {ALERT_FEED_DAYS} days, to the second"
        );
        // The same alert again (a re-delivered record) is the same item.
        assert_eq!(AlertFeedItem::of(&message).expect("an item"), item);
    }

    #[test]
    fn alerts_of_the_same_second_get_different_sort_keys() {
        let t = at("2026-11-21T18:04:05Z");
        assert_ne!(
            feed_sort_key("price_drop", t, "alert#price_drop#zillow:1#2"),
            feed_sort_key("price_drop", t, "alert#price_drop#zillow:2#2")
        );
    }

    #[test]
    fn a_long_alert_id_keeps_the_sort_key_short() {
        let long = "x".repeat(crate::message::MAX_ALERT_ID_BYTES * 4);
        let sk = feed_sort_key("undervalued", at("2026-11-21T18:04:05Z"), &long);
        // `undervalued#` + 20 + `#` + 16: the same length for any id, far under 1,024 bytes.
        assert_eq!(sk.len(), 12 + 20 + 1 + 16);
        assert_eq!(
            sk.len(),
            feed_sort_key("undervalued", at("2026-11-21T18:04:05Z"), "a").len()
        );
    }

    #[test]
    fn a_market_key_over_the_partition_key_limit_has_no_item() {
        let at_limit = "m".repeat(MAX_PARTITION_KEY_BYTES - FEED_KEY_PREFIX.len());
        let item = AlertFeedItem::of(&published(&body("a", &at_limit))).expect("at the limit");
        assert_eq!(item.pk.len(), MAX_PARTITION_KEY_BYTES);
        let past = format!("{at_limit}m");
        assert!(matches!(
            AlertFeedItem::of(&published(&body("a", &past))),
            Err(FeedItemError::KeyTooLong(n)) if n == MAX_PARTITION_KEY_BYTES + 1
        ));
    }
}
