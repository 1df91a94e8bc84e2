//! The listing table's stream records, decoded into the domain's [`ListingStreamRecord`]:
//! each image read back into a [`ListingItem`] with serde_dynamo. What is news and what is
//! skipped is the domain's call ([`realty_alerts::rules::classify`]).

use aws_lambda_events::event::dynamodb::EventRecord;
use realty_alerts::rules::{Image, ListingStreamRecord};
use realty_model::state::ListingItem;

/// `record` with its images decoded.
pub fn decode(record: EventRecord) -> ListingStreamRecord {
    let change = record.change;
    ListingStreamRecord {
        event_id: record.event_id,
        event_name: record.event_name,
        sequence_number: change.sequence_number,
        new_image: image(change.new_image),
        old_image: image(change.old_image),
    }
}

fn image(item: serde_dynamo::Item) -> Image {
    if item.is_empty() {
        return Image::Absent;
    }
    match serde_dynamo::from_item::<_, ListingItem>(item) {
        Ok(item) => Image::Item(Box::new(item)),
        Err(e) => Image::Malformed(e.to_string()),
    }
}
