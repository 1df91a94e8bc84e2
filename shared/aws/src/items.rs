//! The stored shapes of [`realty_core::store`] as DynamoDB items: their size as DynamoDB
//! counts it, and whether a listing's item fits.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use realty_core::metrics::batch::ListingState;
use realty_core::metrics::ports::MAX_ITEM_BYTES;
use realty_core::store::ListingItem;

/// An item's size as DynamoDB counts it against the 400 KB limit and bills it: attribute
/// names plus values; strings and binaries by their bytes, numbers about one byte per two
/// significant digits plus one, null and booleans one byte, lists and maps three bytes plus
/// one per element.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

fn number_size(n: &str) -> usize {
    let digits: String = n
        .chars()
        .take_while(|c| *c != 'e' && *c != 'E')
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    significant.len().div_ceil(2) + 1
}

/// Whether `state`'s listing item fits DynamoDB's item limit (`Err` says by how much not).
pub fn check_listing_item(state: &ListingState) -> Result<(), String> {
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(ListingItem::from(state))
        .map_err(|e| format!("listing item cannot be encoded: {e}"))?;
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(format!(
            "listing item of {size} bytes (as DynamoDB counts them) is over DynamoDB's {MAX_ITEM_BYTES}-byte item limit"
        ));
    }
    Ok(())
}
