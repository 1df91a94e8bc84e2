use super::*;

#[test]
fn physical_names_are_lower_kebab_case_under_the_stack_name() {
    assert_eq!(
        physical_name("realty", "ListingEventsStream"),
        "realty-listing-events-stream"
    );
    assert_eq!(
        physical_name("It-3", "DataLakeBucket"),
        "it-3-data-lake-bucket"
    );
    assert_eq!(physical_name("s", "S3Bucket"), "s-s3-bucket");
}
