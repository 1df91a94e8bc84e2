//! The local stack is the template: what provisioning created, read back through the AWS
//! APIs, has the settings template.yaml gives each resource.

mod deployed;
mod helpers;
mod resources;
mod stacks;

use deployed::{
    data_stores_are_retained_and_protected_from_deletion,
    deployed_roles_have_no_managed_policy_and_no_unexplained_wildcard,
    the_iam_check_refuses_the_roles_sam_would_make,
};
use resources::provisioned_resources_match_template;
use stacks::{
    every_template_resource_is_provisioned_or_skipped_with_a_reason,
    on_demand_stream_mode_follows_the_parameter, provisioning_twice_finds_the_same_stack,
    stacks_under_different_names_do_not_meet,
};

crate::async_tests!(
    provisioned_resources_match_template,
    on_demand_stream_mode_follows_the_parameter,
    provisioning_twice_finds_the_same_stack,
    stacks_under_different_names_do_not_meet,
    every_template_resource_is_provisioned_or_skipped_with_a_reason,
    deployed_roles_have_no_managed_policy_and_no_unexplained_wildcard,
    the_iam_check_refuses_the_roles_sam_would_make,
    data_stores_are_retained_and_protected_from_deletion,
);
