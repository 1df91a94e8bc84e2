//! `AWS::CloudWatch::Alarm` (PutMetricAlarm) and `AWS::CloudWatch::Dashboard`
//! (PutDashboard). Both calls create or replace, so provisioning again brings the
//! definitions in line with the template.
//!
//! The CloudWatch SDK speaks the Smithy RPC v2 CBOR protocol; LocalStack serves it, moto 5.2
//! only CloudWatch's older query protocol and answers 404. An endpoint that answers 404 gets
//! the alarms and dashboards listed as skipped with that reason; any other error fails.

use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::SdkError;
use aws_sdk_cloudwatch::types as cw;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, str_prop};
use crate::template::{as_bool, as_i64, scalar_to_string};

/// Why an endpoint that answers CloudWatch's calls with 404 gets no alarm or dashboard.
const NOT_SERVED: &str = "the emulator does not serve CloudWatch's RPC v2 CBOR protocol, which the SDK speaks (moto 5.2 serves only the query protocol); LocalStack hosts it";

/// Whether the endpoint answered that it has no such operation at all.
fn not_served<E>(err: &SdkError<E, HttpResponse>) -> bool {
    err.raw_response()
        .is_some_and(|r| r.status().as_u16() == 404)
}

impl Provisioner<'_> {
    /// The alarm's ARN, or `None` when the endpoint does not serve CloudWatch (skipped).
    pub(super) async fn alarm(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<Option<String>, ProvisionError> {
        let props = self.props(id)?;
        // Known before the call: a dashboard names the alarm whether or not it is hosted.
        let arn = format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{name}",
            self.ctx.region, self.ctx.account_id
        );
        self.ctx.set_ref(id, name);
        self.ctx.set_attribute(id, "Arn", &arn);
        let shape = |reason: String| ProvisionError::Shape {
            resource: id.to_owned(),
            reason,
        };
        let int = |key: &str| props.get(key).and_then(as_i64).map(|v| v as i32);
        let strings = |key: &str| -> Vec<String> {
            props
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(scalar_to_string)
                .collect()
        };
        let threshold = props
            .get("Threshold")
            .and_then(scalar_to_string)
            .map(|t| t.parse::<f64>())
            .transpose()
            .map_err(|e| shape(format!("Threshold: {e}")))?;
        let mut req = self
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .set_alarm_description(str_prop(&props, "AlarmDescription").map(str::to_owned))
            .set_actions_enabled(props.get("ActionsEnabled").and_then(as_bool))
            .set_alarm_actions(Some(strings("AlarmActions")))
            .set_ok_actions(Some(strings("OKActions")))
            .set_insufficient_data_actions(Some(strings("InsufficientDataActions")))
            .set_namespace(str_prop(&props, "Namespace").map(str::to_owned))
            .set_metric_name(str_prop(&props, "MetricName").map(str::to_owned))
            .set_statistic(str_prop(&props, "Statistic").map(cw::Statistic::from))
            .set_extended_statistic(str_prop(&props, "ExtendedStatistic").map(str::to_owned))
            .set_period(int("Period"))
            .set_evaluation_periods(int("EvaluationPeriods"))
            .set_datapoints_to_alarm(int("DatapointsToAlarm"))
            .set_threshold(threshold)
            .set_comparison_operator(
                str_prop(&props, "ComparisonOperator").map(cw::ComparisonOperator::from),
            )
            .set_treat_missing_data(str_prop(&props, "TreatMissingData").map(str::to_owned));
        if let Some(dimensions) = props.get("Dimensions") {
            req = req.set_dimensions(Some(dimensions_of(dimensions)));
        }
        for query in props
            .get("Metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            req = req.metrics(metric_query(query));
        }
        match req.send().await {
            Ok(_) => Ok(Some(arn)),
            Err(e) if not_served(&e) => {
                self.skip(id, "AWS::CloudWatch::Alarm", NOT_SERVED);
                Ok(None)
            }
            Err(e) => Err(aws_err(id, "PutMetricAlarm")(e)),
        }
    }

    /// The dashboard's name, or `None` when the endpoint does not serve CloudWatch (skipped).
    pub(super) async fn dashboard(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<Option<String>, ProvisionError> {
        let props = self.props(id)?;
        let name = str_prop(&props, "DashboardName").unwrap_or(name).to_owned();
        self.ctx.set_ref(id, &name);
        let body = str_prop(&props, "DashboardBody").ok_or_else(|| ProvisionError::Shape {
            resource: id.to_owned(),
            reason: "DashboardBody is not a string".into(),
        })?;
        let sent = self
            .cloudwatch
            .put_dashboard()
            .dashboard_name(&name)
            .dashboard_body(body)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Some(name)),
            Err(e) if not_served(&e) => {
                self.skip(id, "AWS::CloudWatch::Dashboard", NOT_SERVED);
                Ok(None)
            }
            Err(e) => Err(aws_err(id, "PutDashboard")(e)),
        }
    }
}

fn dimensions_of(dimensions: &Value) -> Vec<cw::Dimension> {
    dimensions
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            cw::Dimension::builder()
                .set_name(d.get("Name").and_then(scalar_to_string))
                .set_value(d.get("Value").and_then(scalar_to_string))
                .build()
        })
        .collect()
}

/// One entry of a metric-math alarm's `Metrics`: a `MetricStat` or an `Expression`.
fn metric_query(query: &Value) -> cw::MetricDataQuery {
    let stat = query.get("MetricStat").map(|stat| {
        let metric = &stat["Metric"];
        cw::MetricStat::builder()
            .metric(
                cw::Metric::builder()
                    .set_namespace(str_prop(metric, "Namespace").map(str::to_owned))
                    .set_metric_name(str_prop(metric, "MetricName").map(str::to_owned))
                    .set_dimensions(metric.get("Dimensions").map(dimensions_of))
                    .build(),
            )
            .set_period(stat.get("Period").and_then(as_i64).map(|v| v as i32))
            .set_stat(str_prop(stat, "Stat").map(str::to_owned))
            .set_unit(str_prop(stat, "Unit").map(cw::StandardUnit::from))
            .build()
    });
    cw::MetricDataQuery::builder()
        .set_id(str_prop(query, "Id").map(str::to_owned))
        .set_metric_stat(stat)
        .set_expression(str_prop(query, "Expression").map(str::to_owned))
        .set_label(str_prop(query, "Label").map(str::to_owned))
        .set_return_data(query.get("ReturnData").and_then(as_bool))
        .set_period(query.get("Period").and_then(as_i64).map(|v| v as i32))
        .build()
}
