//! `AWS::CloudWatch::Alarm` (PutMetricAlarm) and `AWS::CloudWatch::Dashboard`
//! (PutDashboard), both served by moto and LocalStack. Both calls create or replace, so
//! provisioning again brings the definitions in line with the template.

use aws_sdk_cloudwatch::types as cw;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, str_prop};
use crate::template::{as_bool, as_i64, scalar_to_string};

impl Provisioner<'_> {
    pub(super) async fn alarm(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
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
        req.send().await.map_err(aws_err(id, "PutMetricAlarm"))?;
        let arn = format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{name}",
            self.ctx.region, self.ctx.account_id
        );
        self.ctx.set_ref(id, name);
        self.ctx.set_attribute(id, "Arn", &arn);
        Ok(arn)
    }

    pub(super) async fn dashboard(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let name = str_prop(&props, "DashboardName").unwrap_or(name).to_owned();
        let body = str_prop(&props, "DashboardBody").ok_or_else(|| ProvisionError::Shape {
            resource: id.to_owned(),
            reason: "DashboardBody is not a string".into(),
        })?;
        self.cloudwatch
            .put_dashboard()
            .dashboard_name(&name)
            .dashboard_body(body)
            .send()
            .await
            .map_err(aws_err(id, "PutDashboard"))?;
        self.ctx.set_ref(id, &name);
        Ok(name)
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
