//! Every item of a table, by a paged Scan.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Item, sdk_error};
use realty_model::ports::PortError;

/// Every item of a table (a paged, strongly consistent Scan), optionally only those with
/// `sk` = `sort_key` (their keys alone).
pub(super) async fn scan(
    client: &Client,
    table: &str,
    sort_key: Option<&str>,
) -> Result<Vec<Item>, PortError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut request = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take());
        if let Some(sk) = sort_key {
            request = request
                .filter_expression("sk = :sk")
                .projection_expression("pk, sk")
                .expression_attribute_values(":sk", AttributeValue::S(sk.to_owned()));
        }
        let page = request.send().await.map_err(|e| sdk_error("Scan", &e))?;
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}
