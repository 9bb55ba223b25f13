//! Query parameters, filters and pagination of `GET /files` and `GET /batches`, and the shape of
//! a list answer in each flavour.
//!
//! DashScope: files `limit` 1–2000 (default 2000), no `first_id`/`last_id`; batches `limit` 1–100
//! (default 20) with filters `ds_name`, `input_file_ids`, `status`, `create_after`,
//! `create_before`; an empty list has `"data": null`. OpenAI: files `limit` 1–10000 with `order`,
//! batches only `after`/`limit`; lists always carry `first_id`/`last_id`; empty means `[]`.
//! Time filters accept `yyyyMMddHHmmss`, `yyyy-MM-dd HH:mm:ss`, `yyyy-MM-dd` and `yyyyMMdd`,
//! read as UTC.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::api_error::ApiFailure;
use super::config::SimFlavour;
use crate::wire::{BatchStatus, ListPage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileListQuery {
    pub(crate) after: Option<String>,
    pub(crate) limit: usize,
    pub(crate) purpose: Option<String>,
    pub(crate) created_after: Option<i64>,
    pub(crate) created_before: Option<i64>,
    pub(crate) oldest_first: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchListQuery {
    pub(crate) after: Option<String>,
    pub(crate) limit: usize,
    pub(crate) ds_name: Option<String>,
    pub(crate) input_file_ids: Option<Vec<String>>,
    pub(crate) statuses: Option<Vec<BatchStatus>>,
    pub(crate) created_after: Option<i64>,
    pub(crate) created_before: Option<i64>,
}

fn parse_limit(
    parameters: &HashMap<String, String>,
    highest: usize,
    default: usize,
) -> Result<usize, ApiFailure> {
    match parameters.get("limit") {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=highest).contains(limit))
            .ok_or_else(|| {
                ApiFailure::bad_request(
                    "invalid_parameter",
                    format!("'limit' must be an integer between 1 and {highest}, got '{text}'."),
                )
                .with_param("limit")
            }),
    }
}

fn parse_time_parameter(
    parameters: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, ApiFailure> {
    parameters
        .get(name)
        .map(|text| {
            parse_time_filter(text).ok_or_else(|| {
                ApiFailure::bad_request(
                    "invalid_parameter",
                    format!("'{name}' must look like 20250304000000, 2025-03-04 00:00:00, 2025-03-04 or 20250304; got '{text}'."),
                )
                .with_param(name)
            })
        })
        .transpose()
}

fn non_empty(parameters: &HashMap<String, String>, name: &str) -> Option<String> {
    parameters
        .get(name)
        .filter(|value| !value.is_empty())
        .cloned()
}

pub(crate) fn parse_file_list_query(
    parameters: &HashMap<String, String>,
    flavour: SimFlavour,
) -> Result<FileListQuery, ApiFailure> {
    let (highest, default) = match flavour {
        SimFlavour::Dashscope => (2000, 2000),
        SimFlavour::Openai => (10_000, 10_000),
    };
    let oldest_first = match (flavour, parameters.get("order").map(String::as_str)) {
        (SimFlavour::Openai, Some("asc")) => true,
        (SimFlavour::Openai, None | Some("desc")) | (SimFlavour::Dashscope, _) => false,
        (SimFlavour::Openai, Some(other)) => {
            return Err(ApiFailure::bad_request(
                "invalid_parameter",
                format!("'order' must be asc or desc, got '{other}'."),
            )
            .with_param("order"));
        }
    };
    Ok(FileListQuery {
        after: non_empty(parameters, "after"),
        limit: parse_limit(parameters, highest, default)?,
        purpose: non_empty(parameters, "purpose"),
        created_after: parse_time_parameter(parameters, "create_after")?,
        created_before: parse_time_parameter(parameters, "create_before")?,
        oldest_first,
    })
}

pub(crate) fn parse_batch_list_query(
    parameters: &HashMap<String, String>,
    flavour: SimFlavour,
) -> Result<BatchListQuery, ApiFailure> {
    let mut query = BatchListQuery {
        after: non_empty(parameters, "after"),
        limit: parse_limit(parameters, 100, 20)?,
        ds_name: None,
        input_file_ids: None,
        statuses: None,
        created_after: None,
        created_before: None,
    };
    if flavour == SimFlavour::Openai {
        return Ok(query);
    }
    query.ds_name = non_empty(parameters, "ds_name");
    if let Some(ids) = non_empty(parameters, "input_file_ids") {
        let ids: Vec<String> = ids
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        if ids.len() > 20 {
            return Err(ApiFailure::bad_request(
                "invalid_parameter",
                format!(
                    "'input_file_ids' accepts at most 20 ids, got {}.",
                    ids.len()
                ),
            )
            .with_param("input_file_ids"));
        }
        query.input_file_ids = Some(ids);
    }
    if let Some(statuses) = non_empty(parameters, "status") {
        let mut parsed = Vec::new();
        for name in statuses
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let status: BatchStatus = serde_json::from_value(Value::String(name.to_owned()))
                .ok()
                .filter(|status| *status != BatchStatus::Unknown)
                .ok_or_else(|| {
                    ApiFailure::bad_request(
                        "invalid_parameter",
                        format!("Unknown batch status '{name}'."),
                    )
                    .with_param("status")
                })?;
            parsed.push(status);
        }
        query.statuses = Some(parsed);
    }
    query.created_after = parse_time_parameter(parameters, "create_after")?;
    query.created_before = parse_time_parameter(parameters, "create_before")?;
    Ok(query)
}

/// Cuts one page out of `items` (already in list order): the items after the one with id
/// `after` (none when that id is not in the list), at most `limit` of them. Returns the page and
/// whether more items follow.
pub(crate) fn page_of<T>(
    items: Vec<T>,
    id_of: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, bool) {
    let start = match after {
        None => 0,
        Some(after) => match items.iter().position(|item| id_of(item) == after) {
            Some(position) => position + 1,
            None => items.len(),
        },
    };
    let has_more = items.len() > start + limit;
    let page = items.into_iter().skip(start).take(limit).collect();
    (page, has_more)
}

/// A list answer in the flavour's shape.
pub(crate) fn list_answer<T: Serialize>(
    page: Vec<T>,
    has_more: bool,
    ids: Option<(String, String)>,
    flavour: SimFlavour,
    with_first_and_last_ids: bool,
) -> Value {
    let (first_id, last_id) = ids.unzip();
    let data = if page.is_empty() && flavour.empty_list_data_is_null() {
        None
    } else {
        Some(page)
    };
    let list = ListPage {
        object: "list".to_owned(),
        data,
        first_id,
        last_id,
        has_more,
    };
    let mut value = serde_json::to_value(list).expect("a list page serializes");
    if with_first_and_last_ids && let Value::Object(fields) = &mut value {
        fields.entry("first_id").or_insert(Value::Null);
        fields.entry("last_id").or_insert(Value::Null);
    }
    if !with_first_and_last_ids && let Value::Object(fields) = &mut value {
        fields.remove("first_id");
        fields.remove("last_id");
    }
    value
}

/// Unix seconds (UTC) of a DashScope time filter.
pub(crate) fn parse_time_filter(text: &str) -> Option<i64> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let separators_ok = text
        .chars()
        .all(|character| character.is_ascii_digit() || matches!(character, '-' | ' ' | ':'));
    if !separators_ok || !(digits.len() == 8 || digits.len() == 14) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| digits[range].parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = if digits.len() == 14 {
        (number(8..10)?, number(10..12)?, number(12..14)?)
    } else {
        (0, 0, 0)
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The ids of the first and last items of a page, for `first_id` and `last_id`.
pub(crate) fn first_and_last_ids<T>(
    page: &[T],
    id_of: impl Fn(&T) -> &String,
) -> Option<(String, String)> {
    Some((id_of(page.first()?).clone(), id_of(page.last()?).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::super::test_support::frozen_sim;
    use crate::wire::Batch;

    fn parameters(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn time_filters_accept_the_documented_formats() {
        assert_eq!(parse_time_filter("19700101"), Some(0));
        assert_eq!(parse_time_filter("20250304000000"), Some(1_741_046_400));
        assert_eq!(parse_time_filter("2025-03-04"), Some(1_741_046_400));
        assert_eq!(
            parse_time_filter("2025-11-12 10:10:10"),
            Some(1_762_942_210)
        );
        assert_eq!(parse_time_filter("2025-13-01"), None);
        assert_eq!(parse_time_filter("yesterday"), None);
    }

    #[test]
    fn limits_are_checked_per_flavour() {
        let dashscope = parse_batch_list_query(&parameters(&[]), SimFlavour::Dashscope).unwrap();
        assert_eq!(dashscope.limit, 20);
        assert!(
            parse_batch_list_query(&parameters(&[("limit", "101")]), SimFlavour::Dashscope)
                .is_err()
        );
        assert!(
            parse_batch_list_query(&parameters(&[("limit", "0")]), SimFlavour::Dashscope).is_err()
        );
        assert_eq!(
            parse_file_list_query(&parameters(&[]), SimFlavour::Dashscope)
                .unwrap()
                .limit,
            2000
        );
        assert!(
            parse_file_list_query(&parameters(&[("limit", "2001")]), SimFlavour::Dashscope)
                .is_err()
        );
        let many: Vec<String> = (0..21).map(|index| format!("file-{index}")).collect();
        assert!(
            parse_batch_list_query(
                &parameters(&[("input_file_ids", &many.join(","))]),
                SimFlavour::Dashscope
            )
            .is_err()
        );
        let statuses = parse_batch_list_query(
            &parameters(&[("status", "completed,expired")]),
            SimFlavour::Dashscope,
        )
        .unwrap()
        .statuses;
        assert_eq!(
            statuses,
            Some(vec![BatchStatus::Completed, BatchStatus::Expired])
        );
        assert!(
            parse_batch_list_query(&parameters(&[("status", "done")]), SimFlavour::Dashscope)
                .is_err()
        );
    }

    #[test]
    fn pages_follow_the_cursor() {
        let items = vec!["a", "b", "c", "d"];
        assert_eq!(
            page_of(items.clone(), |item| item, None, 2),
            (vec!["a", "b"], true)
        );
        assert_eq!(
            page_of(items.clone(), |item| item, Some("b"), 2),
            (vec!["c", "d"], false)
        );
        assert_eq!(page_of(items, |item| item, Some("zzz"), 2), (vec![], false));
    }

    #[test]
    fn empty_lists_have_each_flavours_shape() {
        let empty: Vec<u32> = Vec::new();
        assert_eq!(
            list_answer(empty.clone(), false, None, SimFlavour::Dashscope, true).to_string(),
            r#"{"data":null,"first_id":null,"has_more":false,"last_id":null,"object":"list"}"#
        );
        assert_eq!(
            list_answer(empty.clone(), false, None, SimFlavour::Dashscope, false).to_string(),
            r#"{"data":null,"has_more":false,"object":"list"}"#
        );
        assert_eq!(
            list_answer(empty, false, None, SimFlavour::Openai, true).to_string(),
            r#"{"data":[],"first_id":null,"has_more":false,"last_id":null,"object":"list"}"#
        );
    }

    #[tokio::test]
    async fn empty_lists_have_null_data_on_dashscope_and_empty_arrays_on_openai() {
        let dashscope = frozen_sim(SimFlavour::Dashscope).await;
        let (_, files) = dashscope.get_json("/files").await;
        assert_eq!(
            files,
            json!({"object": "list", "data": null, "has_more": false})
        );
        let (_, batches) = dashscope.get_json("/batches").await;
        assert_eq!(
            batches,
            json!({"object": "list", "data": null, "first_id": null, "last_id": null, "has_more": false})
        );
        let page: ListPage<Batch> = serde_json::from_value(batches).unwrap();
        assert!(page.into_items().is_empty());

        let openai = frozen_sim(SimFlavour::Openai).await;
        let (_, files) = openai.get_json("/files").await;
        assert_eq!(
            files,
            json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
        );
        let (_, batches) = openai.get_json("/batches").await;
        assert_eq!(batches["data"], json!([]));
    }
}
