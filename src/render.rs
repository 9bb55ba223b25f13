//! Rendering: one input row → one request line `{custom_id, method, url, body}`. No I/O except
//! reading the local image files a job's `[request] images` name (see [`crate::images`]).
//!
//! Templates are minijinja with strict undefined behaviour, checked against the input's columns
//! (their names and their types) before any row is rendered, so a misspelt column or one a
//! template cannot show fails the job up front. A row whose prompt renders to nothing but
//! whitespace is an error, or with `[input] skip_empty` a row that is not sent.

use std::borrow::Cow;
use std::collections::BTreeSet;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::Schema;
use minijinja::{Environment, UndefinedBehavior, Value as TemplateValue};

use crate::json_string::push_json_string;
use crate::request_line::RequestLineWriter;
use crate::template_budget::{
    BudgetedTemplate, PlainPart, TEMPLATE_MEMORY_BUDGET_BYTES, budgeted_environment,
};
use serde_json::{Map, Value, json};

use crate::images::{ImageEmbedder, ImageInput, RowImage};
use crate::job::{EmptyImageRule, Job, ResponseFormat};
use crate::model_facts::thinks_unless_told_not_to;
use crate::output_fields::{answer_json_schema, schema_instruction};
use crate::provider::ProviderProfile;
use crate::table::{cell_value, check_template_type, display_cell, is_text_type, text_cell};

/// A variable every template may use besides the columns: the 1-based row number.
pub const ROW_NUMBER_VARIABLE: &str = "row_number";
/// The name of the variable holding every column of the row: `row`, or `input_row` when the
/// input has a column named `row` (a column's own name wins).
#[must_use]
pub fn row_variable_name<'a>(columns: impl IntoIterator<Item = &'a str>) -> &'static str {
    if columns.into_iter().any(|column| column == ROW_VARIABLE) {
        ROW_VARIABLE_WHEN_A_COLUMN_IS_ROW
    } else {
        ROW_VARIABLE
    }
}

/// How a template names `column`: `{{ 评论 }}` when it is a template identifier (Unicode letters,
/// digits and `_`, as minijinja's lexer reads them, and not one of its reserved words), else
/// `{{ row["user name"] }}` (through `row_variable`, see [`row_variable_name`]).
#[must_use]
pub fn template_spelling(column: &str, row_variable: &str) -> String {
    const RESERVED_WORDS: [&str; 15] = [
        "true", "True", "false", "False", "none", "None", "loop", "self", "and", "or", "not", "in",
        "is", "if", "else",
    ];
    let mut characters = column.chars();
    let identifier = characters
        .next()
        .is_some_and(|first| first == '_' || unicode_ident::is_xid_start(first))
        && characters.all(|next| next == '_' || unicode_ident::is_xid_continue(next))
        && !RESERVED_WORDS.contains(&column);
    if identifier && !column.starts_with("__dashbatch") {
        format!("{{{{ {column} }}}}")
    } else {
        format!(
            "{{{{ {row_variable}[{}] }}}}",
            serde_json::to_string(column).expect("a string serialises")
        )
    }
}

/// The variable holding every column of the row by name, for names that are not identifiers:
/// `{{ row["user name"] }}`. A column of this name wins over it.
pub const ROW_VARIABLE: &str = "row";
/// The name of that variable when a column is named `row`.
pub const ROW_VARIABLE_WHEN_A_COLUMN_IS_ROW: &str = "input_row";

/// Template instructions one render may run. A prompt template runs a few hundred; a runaway
/// loop (`{% for a in s %}{% for b in s %}...`) stops with an error within a fraction of a second
/// instead of hanging `validate`, `estimate` and `run`.
pub const TEMPLATE_FUEL: u64 = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("job file `{job_file}`, key `{key}`: {message}")]
    Template {
        job_file: String,
        key: &'static str,
        message: String,
    },
    #[error("{input}, column `{column}`: {message}")]
    Column {
        input: String,
        column: String,
        message: String,
    },
    #[error(
        "{input}, row {row}{line}{columns}{custom_id}: {message}",
        line = line.map(|line| format!(" (line {line})")).unwrap_or_default(),
        columns = column_list(columns),
        custom_id = custom_id.as_deref().map(|id| format!(" (custom_id `{id}`)")).unwrap_or_default()
    )]
    Row {
        input: String,
        row: u64,
        /// The line of the file the row starts on, for formats with lines.
        line: Option<u64>,
        /// The columns the problem is in, when it is in some.
        columns: Vec<String>,
        custom_id: Option<String>,
        message: String,
    },
}

/// `, column `a`` or `, columns `a`, `b`` (or nothing).
fn column_list(columns: &[String]) -> String {
    let names = columns
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match columns.len() {
        0 => String::new(),
        1 => format!(", column {names}"),
        _ => format!(", columns {names}"),
    }
}

impl RenderError {
    /// The same error, naming the part file of a partitioned input that its row is in.
    pub fn in_part(mut self, part: Option<&std::path::Path>) -> RenderError {
        if let (RenderError::Row { input, .. }, Some(part)) = (&mut self, part) {
            *input = part.display().to_string();
        }
        self
    }

    /// The same error, naming the line its row starts on.
    pub fn with_line(self, line: Option<u64>) -> RenderError {
        match self {
            RenderError::Row {
                input,
                row,
                columns,
                custom_id,
                message,
                ..
            } => RenderError::Row {
                input,
                row,
                line,
                columns,
                custom_id,
                message,
            },
            other => other,
        }
    }
}

/// What a row becomes: a request line, or (with `[input] skip_empty`) nothing to send because
/// its prompt is empty.
#[derive(Debug, Clone)]
pub enum RenderedRow {
    Request(RenderedRequest),
    Skipped(SkippedRow),
}

/// A row that is not sent; its output row says why.
#[derive(Debug, Clone)]
pub struct SkippedRow {
    pub row_number: u64,
    pub custom_id: String,
    /// Why, e.g. "the prompt is empty: column `text` is empty".
    pub reason: String,
}

/// One rendered request line, without its trailing newline.
#[derive(Debug, Clone)]
pub struct RenderedRequest {
    pub row_number: u64,
    pub custom_id: String,
    pub line: Vec<u8>,
    /// The SHA-256 of the body in canonical JSON, from which the request's key is made
    /// ([`crate::request_key::RequestKey`]).
    pub body_digest: crate::request_key::BodyDigest,
}

/// One of `[request] images`.
enum ImageSlot {
    /// A template rendering to a URL, a path or a data URL.
    Template(TemplateSlot),
    /// A template that is only a binary column (`{{ photo }}`): the cell's bytes are the image.
    BinaryColumn {
        key: &'static str,
        index: usize,
        name: String,
    },
}

impl ImageSlot {
    fn key(&self) -> &'static str {
        match self {
            ImageSlot::Template(slot) => slot.name,
            ImageSlot::BinaryColumn { key, .. } => key,
        }
    }

    fn column_names(&self) -> Vec<String> {
        match self {
            ImageSlot::Template(slot) => {
                slot.columns.iter().map(|(_, name)| name.clone()).collect()
            }
            ImageSlot::BinaryColumn { name, .. } => vec![name.clone()],
        }
    }
}

/// The binary column a template is nothing but (`{{ photo }}`), if it is.
fn binary_column_named(source: &str, schema: &Schema) -> Option<(usize, String)> {
    let name = source.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let index = schema.index_of(name).ok()?;
    matches!(
        schema.field(index).data_type(),
        arrow_schema::DataType::Binary
            | arrow_schema::DataType::LargeBinary
            | arrow_schema::DataType::BinaryView
            | arrow_schema::DataType::FixedSizeBinary(_)
    )
    .then(|| (index, name.to_owned()))
}

/// The bytes of a binary cell; `None` when it is null.
fn binary_cell(column: &dyn Array, row: usize) -> Option<&[u8]> {
    use arrow_array::{BinaryArray, BinaryViewArray, FixedSizeBinaryArray, LargeBinaryArray};
    if column.is_null(row) {
        return None;
    }
    let any = column.as_any();
    if let Some(array) = any.downcast_ref::<BinaryArray>() {
        Some(array.value(row))
    } else if let Some(array) = any.downcast_ref::<LargeBinaryArray>() {
        Some(array.value(row))
    } else if let Some(array) = any.downcast_ref::<BinaryViewArray>() {
        Some(array.value(row))
    } else {
        any.downcast_ref::<FixedSizeBinaryArray>()
            .map(|array| array.value(row))
    }
}

/// A piece of a template that is only text and variables (see [`PlainPart`]).
enum PlainSegment {
    Text(String),
    /// A column of text (Arrow `Utf8`, `LargeUtf8` or `Utf8View`).
    TextColumn(usize),
    RowNumber,
}

/// The system prompt with the declared fields' schema instruction after it, when the provider
/// takes no schema mode.
fn with_schema_suffix(system_text: String, suffix: Option<&str>) -> String {
    match suffix {
        Some(suffix) => format!("{system_text}\n\n{suffix}"),
        None => system_text,
    }
}

/// A plain template filled in for `row`: what rendering it gives. `None` when a cell is null
/// or the text would pass the render budget: the template is then run, and says so.
fn fill_plain(
    plain: &[PlainSegment],
    batch: &RecordBatch,
    row: usize,
    row_number: u64,
) -> Option<String> {
    let mut length = 0;
    for segment in plain {
        length += match segment {
            PlainSegment::Text(raw) => raw.len(),
            PlainSegment::TextColumn(index) => text_cell(batch.column(*index), row)?.len(),
            PlainSegment::RowNumber => 20,
        };
    }
    if length > TEMPLATE_MEMORY_BUDGET_BYTES {
        return None;
    }
    let mut text = String::with_capacity(length);
    for segment in plain {
        match segment {
            PlainSegment::Text(raw) => text.push_str(raw),
            PlainSegment::TextColumn(index) => text.push_str(text_cell(batch.column(*index), row)?),
            PlainSegment::RowNumber => {
                use std::fmt::Write;
                write!(text, "{row_number}").expect("writing to a string");
            }
        }
    }
    Some(text)
}

struct TemplateSlot {
    name: &'static str,
    /// Column indexes the template reads, with their names.
    columns: Vec<(usize, String)>,
    uses_row_number: bool,
    /// The columns `row` holds when the template reads it: every column a template can show.
    row_columns: Option<Vec<(usize, String)>>,
    /// Rendered once when the template reads no variable.
    constant: Option<String>,
    /// The template as text and string columns only, filled in without running it.
    plain: Option<Vec<PlainSegment>>,
    /// The template as run per row: within the render memory budget.
    program: BudgetedTemplate,
}

pub struct RequestRenderer {
    environment: Environment<'static>,
    user_slot: TemplateSlot,
    system_slot: Option<TemplateSlot>,
    system_suffix: Option<String>,
    /// The messages up to the user's content, when the system message is the same for every
    /// row (`push_messages_start`).
    fixed_messages_start: Option<Vec<u8>>,
    /// The job's fixed body, escaped once: each row only adds its messages or input.
    line_writer: RequestLineWriter,
    endpoint: String,
    is_embeddings: bool,
    id_column_index: Option<usize>,
    max_custom_id_chars: usize,
    input_label: String,
    skip_empty: bool,
    /// The name of the variable holding every column (see [`row_variable_name`]).
    row_variable: &'static str,
    /// `[request] images`, in order; empty for a text job.
    image_slots: Vec<ImageSlot>,
    image_embedder: ImageEmbedder,
    empty_image: EmptyImageRule,
    /// The longest request line a shard may hold.
    max_line_bytes: usize,
}

impl RequestRenderer {
    /// Compiles the job's templates and checks them against `schema`.
    pub fn new(
        job: &Job,
        profile: &ProviderProfile,
        schema: &Schema,
    ) -> Result<RequestRenderer, RenderError> {
        let request = &job.spec.request;
        let job_file = job.job_file.display().to_string();
        // Renders within a memory budget; an empty cell (null) renders as nothing, not `none`.
        let mut environment = budgeted_environment();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment.set_fuel(Some(TEMPLATE_FUEL));
        let column_names: Vec<String> = schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let row_variable = row_variable_name(column_names.iter().map(String::as_str));

        let mut add_template = |name: &'static str,
                                source: &str|
         -> Result<TemplateSlot, RenderError> {
            // Compiled for rendering first: that refuses what would exhaust memory even to compile.
            let program = BudgetedTemplate::compile(name, source).map_err(|message| {
                RenderError::Template {
                    job_file: job_file.clone(),
                    key: name,
                    message,
                }
            })?;
            environment
                .add_template_owned(name, program.source().to_owned())
                .map_err(|error| RenderError::Template {
                    job_file: job_file.clone(),
                    key: name,
                    message: format!("the template does not parse: {error}"),
                })?;
            let template = environment.get_template(name).expect("template just added");
            let variables: BTreeSet<String> =
                template.undeclared_variables(false).into_iter().collect();
            let mut columns = Vec::new();
            let mut uses_row_number = false;
            let mut uses_row = false;
            let mut missing = Vec::new();
            for variable in &variables {
                if let Some(index) = column_names.iter().position(|column| column == variable) {
                    columns.push((index, variable.clone()));
                } else if variable == ROW_NUMBER_VARIABLE {
                    uses_row_number = true;
                } else if variable == row_variable {
                    uses_row = true;
                } else if environment.globals().any(|(global, _)| global == variable) {
                    // `range`, `namespace`, `dict`: minijinja's own functions, not columns.
                } else {
                    missing.push(variable.clone());
                }
            }
            let row_columns = uses_row.then(|| {
                schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, field)| check_template_type(field.data_type()).is_ok())
                    .map(|(index, field)| (index, field.name().clone()))
                    .collect()
            });
            if !missing.is_empty() {
                return Err(RenderError::Template {
                    job_file: job_file.clone(),
                    key: name,
                    message: format!(
                        "the template uses {} that the input `{}` does not have; its columns are {}",
                        missing
                            .iter()
                            .map(|name| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        job.input_path.display(),
                        column_names
                            .iter()
                            .map(|name| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            let plain = program.plain_parts().and_then(|parts| {
                parts
                    .iter()
                    .map(|part| match *part {
                        PlainPart::Text(text) => Some(PlainSegment::Text(text.to_owned())),
                        PlainPart::Variable(variable) => {
                            match columns.iter().find(|(_, column)| column == variable) {
                                Some((index, _)) => is_text_type(schema.field(*index).data_type())
                                    .then_some(PlainSegment::TextColumn(*index)),
                                None => (variable == ROW_NUMBER_VARIABLE)
                                    .then_some(PlainSegment::RowNumber),
                            }
                        }
                    })
                    .collect::<Option<Vec<_>>>()
            });
            let constant = if variables.is_empty() {
                Some(
                    program
                        .render(&environment, TemplateValue::from(()))
                        .map_err(|error| RenderError::Template {
                            job_file: job_file.clone(),
                            key: name,
                            message: error.to_string(),
                        })?,
                )
            } else {
                None
            };
            Ok(TemplateSlot {
                name,
                columns,
                uses_row_number,
                row_columns,
                constant,
                plain,
                program,
            })
        };
        let user_slot = add_template("request.template", &request.template)?;
        let system_slot = match &request.system {
            Some(system) => Some(add_template("request.system", system)?),
            None => None,
        };
        let mut image_slots = Vec::new();
        for (position, source) in request.images.iter().enumerate() {
            // A key per image template, for errors; made once per renderer.
            let key: &'static str =
                Box::leak(format!("request.images[{position}]").into_boxed_str());
            image_slots.push(match binary_column_named(source, schema) {
                Some((index, name)) => ImageSlot::BinaryColumn { key, index, name },
                None => ImageSlot::Template(add_template(key, source)?),
            });
        }
        let input_label = job.input_path.display().to_string();
        let check_type = |index: usize| -> Result<(), RenderError> {
            let field = schema.field(index);
            check_template_type(field.data_type()).map_err(|message| RenderError::Column {
                input: input_label.clone(),
                column: field.name().clone(),
                message,
            })
        };
        let image_template_columns = image_slots.iter().flat_map(|slot| match slot {
            ImageSlot::Template(template) => template.columns.as_slice(),
            ImageSlot::BinaryColumn { .. } => &[],
        });
        for (index, _) in user_slot
            .columns
            .iter()
            .chain(system_slot.iter().flat_map(|slot| slot.columns.iter()))
            .chain(image_template_columns)
        {
            check_type(*index)?;
        }

        let id_column_index = match &job.spec.input.id_column {
            Some(id_column) => Some(
                column_names
                    .iter()
                    .position(|column| column == id_column)
                    .ok_or_else(|| RenderError::Template {
                        job_file: job_file.clone(),
                        key: "input.id_column",
                        message: format!(
                            "column `{id_column}` is not in `{}`; its columns are {}",
                            job.input_path.display(),
                            column_names.join(", ")
                        ),
                    })?,
            ),
            None => None,
        };
        if let Some(index) = id_column_index {
            check_type(index)?;
        }
        if let Some(keep) = &job.spec.output.keep_columns {
            for column in keep {
                if !column_names.contains(column) {
                    return Err(RenderError::Template {
                        job_file: job_file.clone(),
                        key: "output.keep_columns",
                        message: format!(
                            "column `{column}` is not in `{}`; its columns are {}",
                            job.input_path.display(),
                            column_names.join(", ")
                        ),
                    });
                }
            }
        }

        let is_embeddings = job.is_embeddings();
        let mut base_body = Map::new();
        base_body.insert("model".into(), Value::from(request.model.clone()));
        let mut system_suffix = None;
        if is_embeddings {
            base_body.insert("encoding_format".into(), Value::from("float"));
            if let Some(dimensions) = request.dimensions {
                base_body.insert("dimensions".into(), Value::from(dimensions));
            }
        } else {
            if let Some(temperature) = request.temperature {
                base_body.insert("temperature".into(), json!(temperature));
            }
            if let Some(top_p) = request.top_p {
                base_body.insert("top_p".into(), json!(top_p));
            }
            if let Some(max_tokens) = request.max_tokens {
                base_body.insert("max_tokens".into(), json!(max_tokens));
            }
            if let Some(stop) = &request.stop {
                base_body.insert("stop".into(), json!(stop));
            }
            if let Some(seed) = request.seed {
                base_body.insert("seed".into(), json!(seed));
            }
            let fields = &job.spec.output.fields;
            if !fields.is_empty() {
                if profile.accepts_json_schema(&request.model) {
                    base_body.insert(
                        "response_format".into(),
                        json!({
                            "type": "json_schema",
                            "json_schema": {
                                "name": "answer",
                                "strict": true,
                                "schema": answer_json_schema(fields),
                            }
                        }),
                    );
                } else {
                    base_body.insert("response_format".into(), json!({"type": "json_object"}));
                    system_suffix = Some(schema_instruction(fields));
                }
            } else if request.response_format == Some(ResponseFormat::JsonObject) {
                base_body.insert("response_format".into(), json!({"type": "json_object"}));
            }
            let thinking = match request.enable_thinking {
                Some(explicit) => Some(explicit),
                None if thinks_unless_told_not_to(&request.model) => Some(false),
                None => None,
            };
            if let Some(thinking) = thinking
                && profile.kind != crate::provider::ProviderKind::Openai
            {
                base_body.insert("enable_thinking".into(), Value::from(thinking));
            }
            if let Some(budget) = request.thinking_budget {
                base_body.insert("thinking_budget".into(), json!(budget));
            }
            if let Some(high_resolution) = request.vl_high_resolution_images
                && profile.kind != crate::provider::ProviderKind::Openai
            {
                base_body.insert(
                    "vl_high_resolution_images".into(),
                    Value::from(high_resolution),
                );
            }
        }

        let fixed_messages_start = match (&system_slot, &system_suffix) {
            (None, None) => None,
            (None, Some(suffix)) => Some(suffix.clone()),
            (Some(slot), suffix) => slot
                .constant
                .as_ref()
                .map(|text| with_schema_suffix(text.clone(), suffix.as_deref())),
        }
        .map(|text| {
            let mut json = Vec::new();
            push_json_string(&mut json, &text);
            let mut start = Vec::new();
            push_messages_start(&mut start, Some(&json));
            start
        });
        let mut line_writer = RequestLineWriter::new(
            &base_body,
            &request.endpoint,
            if is_embeddings { "input" } else { "messages" },
        );
        if let Some(start) = &fixed_messages_start
            && !is_embeddings
        {
            // Every row's messages start with the job's own system message (see
            // `messages_json`): its digest is taken once.
            line_writer = line_writer.with_entry_start(start.clone());
        }
        Ok(RequestRenderer {
            environment,
            user_slot,
            system_slot,
            system_suffix,
            fixed_messages_start,
            line_writer,
            endpoint: request.endpoint.clone(),
            is_embeddings,
            id_column_index,
            max_custom_id_chars: profile.max_custom_id_chars,
            input_label,
            skip_empty: job.spec.input.skip_empty,
            row_variable,
            image_slots,
            image_embedder: ImageEmbedder::new(job),
            empty_image: request.empty_image,
            max_line_bytes: usize::try_from(
                crate::shard::shard_limits(job, profile).max_line_bytes,
            )
            .unwrap_or(usize::MAX),
        })
    }

    /// Whether rows carry images: then rendering a row reads and decodes files, which is worth
    /// spreading over cores.
    pub fn sends_images(&self) -> bool {
        !self.image_slots.is_empty()
    }

    /// The endpoint every request line names (`url`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The custom_id of `row` in `batch` whose first row has number `first_row_number`.
    /// Borrowed from the batch when the id column holds text.
    pub fn custom_id<'batch>(
        &self,
        batch: &'batch RecordBatch,
        row: usize,
        row_number: u64,
    ) -> Result<Cow<'batch, str>, RenderError> {
        let Some(index) = self.id_column_index else {
            return Ok(Cow::Owned(row_number.to_string()));
        };
        let column = batch.column(index);
        let id_columns = || vec![batch.schema().field(index).name().clone()];
        if column.is_null(row) {
            return Err(self.row_error(
                row_number,
                id_columns(),
                None,
                "the id column is empty; every row needs an id",
            ));
        }
        let id = display_cell(column.as_ref(), row)
            .map_err(|error| self.row_error(row_number, id_columns(), None, &error.to_string()))?;
        if id.is_empty() {
            return Err(self.row_error(
                row_number,
                id_columns(),
                None,
                "the id column is empty; every row needs an id",
            ));
        }
        // An id no longer in bytes than the limit is within it in characters too.
        if id.len() <= self.max_custom_id_chars {
            return Ok(id);
        }
        let characters = id.chars().count();
        if characters > self.max_custom_id_chars {
            let shown: String = id.chars().take(40).collect();
            return Err(self.row_error(
                row_number,
                id_columns(),
                Some(format!("{shown}…")),
                &format!(
                    "the id is {characters} characters long; the provider accepts at most {}",
                    self.max_custom_id_chars
                ),
            ));
        }
        Ok(id)
    }

    fn row_error(
        &self,
        row: u64,
        columns: Vec<String>,
        custom_id: Option<String>,
        message: &str,
    ) -> RenderError {
        RenderError::Row {
            input: self.input_label.clone(),
            row,
            line: None,
            columns,
            custom_id,
            message: message.to_owned(),
        }
    }

    fn render_slot<'a>(
        &self,
        slot: &'a TemplateSlot,
        batch: &RecordBatch,
        row: usize,
        row_number: u64,
        custom_id: &str,
    ) -> Result<String, RenderError> {
        if let Some(constant) = &slot.constant {
            return Ok(constant.clone());
        }
        if let Some(plain) = &slot.plain
            && let Some(text) = fill_plain(plain, batch, row, row_number)
        {
            return Ok(text);
        }
        let cells = |columns: &'a [(usize, String)]| {
            let mut values = std::collections::BTreeMap::new();
            for (index, name) in columns {
                let column: &ArrayRef = batch.column(*index);
                let value = cell_value(column.as_ref(), row).map_err(|error| {
                    self.row_error(
                        row_number,
                        vec![name.clone()],
                        Some(custom_id.to_owned()),
                        &error.to_string(),
                    )
                })?;
                values.insert(name.as_str(), value);
            }
            Ok::<_, RenderError>(values)
        };
        let mut pairs: std::collections::BTreeMap<&str, TemplateValue> = cells(&slot.columns)?;
        if slot.uses_row_number {
            pairs.insert(ROW_NUMBER_VARIABLE, TemplateValue::from(row_number));
        }
        if let Some(row_columns) = &slot.row_columns {
            pairs.insert(self.row_variable, TemplateValue::from(cells(row_columns)?));
        }
        let context = TemplateValue::from(pairs);
        slot.program
            .render(&self.environment, context)
            .map_err(|error| {
                // A key of the row map that is no column is the likely cause: say the keys.
                let hint = match &slot.row_columns {
                    Some(columns) if error.kind() == minijinja::ErrorKind::UndefinedError => {
                        format!(
                            "; `{}[...]` takes a column name, one of {}",
                            self.row_variable,
                            columns
                                .iter()
                                .map(|(_, name)| format!("`{name}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                    _ => String::new(),
                };
                self.row_error(
                    row_number,
                    Vec::new(),
                    Some(custom_id.to_owned()),
                    &format!("`{}` failed to render: {error}{hint}", slot.name),
                )
            })
    }

    /// Why the prompt `user_text` of `row` counts as empty, or `None` when it does not: it
    /// renders to nothing but whitespace. The reason names the template's columns that are
    /// empty.
    fn empty_prompt_reason(
        &self,
        batch: &RecordBatch,
        row: usize,
        user_text: &str,
    ) -> Option<String> {
        if !user_text.trim().is_empty() {
            return None;
        }
        let blank: Vec<String> = self
            .user_slot
            .columns
            .iter()
            .filter(|(index, _)| {
                let column = batch.column(*index);
                column.is_null(row)
                    || display_cell(column.as_ref(), row)
                        .map(|text| text.trim().is_empty())
                        .unwrap_or(false)
            })
            .map(|(_, name)| format!("`{name}`"))
            .collect();
        let why = match blank.len() {
            0 => "the template renders nothing for this row".to_owned(),
            1 => format!("column {} is empty or only whitespace", blank[0]),
            _ => format!("columns {} are empty or only whitespace", blank.join(", ")),
        };
        Some(format!(
            "the prompt is empty: `request.template` renders to nothing but whitespace ({why})"
        ))
    }

    /// The columns the prompt template reads.
    fn prompt_columns(&self) -> Vec<String> {
        self.user_slot
            .columns
            .iter()
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Why `row` is not sent under `[input] skip_empty`, or `None` when it is sent (always `None`
    /// without `skip_empty`). The join asks this to find the rows the plan skipped.
    pub fn skipped_reason(
        &self,
        batch: &RecordBatch,
        row: usize,
        row_number: u64,
        custom_id: &str,
    ) -> Result<Option<String>, RenderError> {
        if !self.skip_empty {
            return Ok(None);
        }
        let user_text = self.render_slot(&self.user_slot, batch, row, row_number, custom_id)?;
        // A row with an image was sent even when its text is empty.
        for slot in &self.image_slots {
            if self
                .image_value(slot, batch, row, row_number, custom_id)?
                .is_some()
            {
                return Ok(None);
            }
        }
        Ok(self.empty_prompt_reason(batch, row, &user_text))
    }

    /// What one image slot gives for `row`: the rendered text or the binary cell; `None` when it
    /// is empty.
    fn image_value<'batch>(
        &self,
        slot: &ImageSlot,
        batch: &'batch RecordBatch,
        row: usize,
        row_number: u64,
        custom_id: &str,
    ) -> Result<Option<ImageValue<'batch>>, RenderError> {
        Ok(match slot {
            ImageSlot::Template(template) => {
                let text = self.render_slot(template, batch, row, row_number, custom_id)?;
                (!text.trim().is_empty()).then_some(ImageValue::Text(text))
            }
            ImageSlot::BinaryColumn { index, .. } => {
                binary_cell(batch.column(*index).as_ref(), row)
                    .filter(|bytes| !bytes.is_empty())
                    .map(ImageValue::Bytes)
            }
        })
    }

    /// The row's images, read and checked; an empty one is an error or left out, as
    /// `[request] empty_image` says.
    fn row_images(
        &self,
        batch: &RecordBatch,
        row: usize,
        row_number: u64,
        custom_id: &str,
    ) -> Result<Vec<RowImage>, RenderError> {
        let mut images = Vec::with_capacity(self.image_slots.len());
        for slot in &self.image_slots {
            let value = self.image_value(slot, batch, row, row_number, custom_id)?;
            let input = match &value {
                Some(ImageValue::Text(text)) => ImageInput::Rendered(text),
                Some(ImageValue::Bytes(bytes)) => ImageInput::Bytes(bytes),
                None => match self.empty_image {
                    EmptyImageRule::TextOnly => continue,
                    EmptyImageRule::Refuse => {
                        return Err(self.row_error(
                            row_number,
                            slot.column_names(),
                            Some(custom_id.to_owned()),
                            &format!(
                                "`{}` renders to nothing for this row; fill the cell, remove the row, or set `[request] empty_image = \"text_only\"` to send such rows without this image",
                                slot.key()
                            ),
                        ));
                    }
                },
            };
            let image = self.image_embedder.image(input).map_err(|message| {
                self.row_error(
                    row_number,
                    slot.column_names(),
                    Some(custom_id.to_owned()),
                    &format!("`{}`: {message}", slot.key()),
                )
            })?;
            images.push(image);
        }
        Ok(images)
    }

    /// The columns the image templates read.
    fn image_columns(&self) -> Vec<String> {
        self.image_slots
            .iter()
            .flat_map(ImageSlot::column_names)
            .collect()
    }

    /// Renders one row into a request line, or (with `[input] skip_empty`) a row not to send
    /// because its prompt is empty. Without `skip_empty` an empty prompt is an error.
    pub fn render_row(
        &self,
        batch: &RecordBatch,
        row: usize,
        row_number: u64,
    ) -> Result<RenderedRow, RenderError> {
        let custom_id = self.custom_id(batch, row, row_number)?.into_owned();
        let user_text = self.render_slot(&self.user_slot, batch, row, row_number, &custom_id)?;
        let mut images = self.row_images(batch, row, row_number, &custom_id)?;
        let empty_prompt = if images.is_empty() {
            self.empty_prompt_reason(batch, row, &user_text)
        } else {
            None
        };
        if let Some(reason) = empty_prompt {
            if self.skip_empty {
                return Ok(RenderedRow::Skipped(SkippedRow {
                    row_number,
                    custom_id,
                    reason,
                }));
            }
            return Err(self.row_error(
                row_number,
                self.prompt_columns(),
                Some(custom_id),
                &format!(
                    "{reason}; an empty prompt would still be sent and billed. Fill the cell, remove the row, or set `[input] skip_empty = true` to send no request for such rows (each gets an output row with status `skipped`)"
                ),
            ));
        }
        if self.is_embeddings {
            let mut input = Vec::with_capacity(user_text.len() + 2);
            push_json_string(&mut input, &user_text);
            let (line, body_digest) = self.line_writer.write(&custom_id, &input);
            return Ok(RenderedRow::Request(RenderedRequest {
                row_number,
                line,
                custom_id,
                body_digest,
            }));
        }
        let system_text = match (&self.fixed_messages_start, &self.system_slot) {
            (Some(_), _) | (None, None) => None,
            (None, Some(slot)) => {
                let text = self.render_slot(slot, batch, row, row_number, &custom_id)?;
                Some(with_schema_suffix(text, self.system_suffix.as_deref()))
            }
        };
        if self.image_slots.is_empty() && self.fixed_messages_start.is_some() {
            // The messages after the job's own system message, whose start the line writer
            // holds and has hashed: the user's message only is written, once.
            let (line, body_digest) = self.line_writer.write_text_after_entry_start(
                &custom_id,
                &user_text,
                USER_MESSAGE_END,
            );
            return Ok(RenderedRow::Request(RenderedRequest {
                row_number,
                line,
                custom_id,
                body_digest,
            }));
        }
        let mut messages = self.messages_json(system_text.as_deref(), &user_text, &images);
        let (mut line, mut body_digest) = self.line_writer.write(&custom_id, &messages);
        if !images.is_empty() {
            let changed = self
                .image_embedder
                .fit_row(&mut images, line.len(), self.max_line_bytes)
                .map_err(|message| {
                    self.row_error(
                        row_number,
                        self.image_columns(),
                        Some(custom_id.clone()),
                        &message,
                    )
                })?;
            if changed {
                messages = self.messages_json(system_text.as_deref(), &user_text, &images);
                (line, body_digest) = self.line_writer.write(&custom_id, &messages);
            }
        }
        Ok(RenderedRow::Request(RenderedRequest {
            row_number,
            line,
            custom_id,
            body_digest,
        }))
    }

    /// The row's messages as JSON with every object's keys in byte order: the system message
    /// (the job's fixed one, or `system_text` rendered for the row), then the user's.
    fn messages_json(
        &self,
        system_text: Option<&str>,
        user_text: &str,
        images: &[RowImage],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            user_text.len() + 64 + self.fixed_messages_start.as_ref().map_or(0, Vec::len),
        );
        match &self.fixed_messages_start {
            Some(start) => out.extend_from_slice(start),
            None => {
                let system_json = system_text.map(|text| {
                    let mut json = Vec::with_capacity(text.len() + 2);
                    push_json_string(&mut json, text);
                    json
                });
                push_messages_start(&mut out, system_json.as_deref());
            }
        }
        if self.image_slots.is_empty() {
            push_json_string(&mut out, user_text);
        } else {
            // serde_json's map writes keys in byte order.
            serde_json::to_writer(&mut out, &self.user_content(user_text, images))
                .expect("content parts serialise");
        }
        out.extend_from_slice(USER_MESSAGE_END);
        out
    }

    /// The user message's content parts: the images in order, then the text unless it is empty.
    fn user_content(&self, user_text: &str, images: &[RowImage]) -> Value {
        let mut parts: Vec<Value> = images
            .iter()
            .map(|image| json!({"type": "image_url", "image_url": {"url": image.url}}))
            .collect();
        if !user_text.trim().is_empty() {
            parts.push(json!({"type": "text", "text": user_text}));
        }
        Value::Array(parts)
    }
}

/// The messages up to the user's content: `[`, the system message when there is one (its text
/// already a JSON string), then the user's message up to its content.
fn push_messages_start(out: &mut Vec<u8>, system_json: Option<&[u8]>) {
    out.push(b'[');
    if let Some(system_json) = system_json {
        out.extend_from_slice(b"{\"content\":");
        out.extend_from_slice(system_json);
        out.extend_from_slice(b",\"role\":\"system\"},");
    }
    out.extend_from_slice(b"{\"content\":");
}

/// What closes the user's message, and the messages, after its content.
const USER_MESSAGE_END: &[u8] = b",\"role\":\"user\"}]";

/// What an image slot gives for a row before it is read.
enum ImageValue<'batch> {
    Text(String),
    Bytes(&'batch [u8]),
}

use arrow_array::Array;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::load_job;
    use crate::provider::ProviderKind;
    use arrow_array::StringArray;
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

    fn job(extra_request: &str, extra: &str) -> Job {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("job.toml");
        std::fs::write(
            &path,
            format!(
                "[input]\npath = \"rows.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Review: {{{{ text }}}}\"\n{extra_request}\n{extra}"
            ),
        )
        .unwrap();
        load_job(&path).unwrap()
    }

    fn batch(ids: Vec<&str>, texts: Vec<&str>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(texts)),
            ],
        )
        .unwrap()
    }

    fn request(rendered: RenderedRow) -> RenderedRequest {
        match rendered {
            RenderedRow::Request(request) => request,
            RenderedRow::Skipped(skipped) => panic!("skipped: {}", skipped.reason),
        }
    }

    fn profile() -> ProviderProfile {
        ProviderProfile::for_kind(ProviderKind::Dashscope)
    }

    #[test]
    fn every_column_has_a_spelling_a_template_reads() {
        for (column, spelling) in [
            ("text", "{{ text }}"),
            ("评论", "{{ 评论 }}"),
            ("_private", "{{ _private }}"),
            ("user name", "{{ row[\"user name\"] }}"),
            ("2nd", "{{ row[\"2nd\"] }}"),
            ("in", "{{ row[\"in\"] }}"),
            ("a\"b", "{{ row[\"a\\\"b\"] }}"),
            ("user-id", "{{ row[\"user-id\"] }}"),
        ] {
            assert_eq!(template_spelling(column, "row"), spelling, "{column}");
        }
    }

    #[test]
    fn row_renders_into_a_request_line() {
        let job = job("system = \"Be brief.\"\nmax_tokens = 20", "");
        let batch = batch(vec!["a-1"], vec!["好吃 \"yes\""]);
        let renderer = RequestRenderer::new(&job, &profile(), &batch.schema()).unwrap();
        let rendered = request(renderer.render_row(&batch, 0, 1).unwrap());
        let line: Value = serde_json::from_slice(&rendered.line).unwrap();
        assert_eq!(line["custom_id"], "a-1");
        assert_eq!(line["method"], "POST");
        assert_eq!(line["url"], "/v1/chat/completions");
        assert_eq!(line["body"]["model"], "qwen-flash");
        assert_eq!(line["body"]["max_tokens"], 20);
        assert_eq!(line["body"]["messages"][0]["content"], "Be brief.");
        assert_eq!(
            line["body"]["messages"][1]["content"],
            "Review: 好吃 \"yes\""
        );
        assert!(line["body"].get("enable_thinking").is_none());
        // The digest the renderer made from its parts is the one the line's body has.
        assert_eq!(
            crate::request_key::RequestKey::of_request_line("h", &rendered.line)
                .unwrap()
                .1,
            crate::request_key::RequestKey::new("h", "/v1/chat/completions", &rendered.body_digest)
        );
    }

    #[test]
    fn missing_column_is_named_before_any_row() {
        let mut job = job("", "");
        job.spec.request.template = "{{ title }} {{ text }}".into();
        let batch = batch(vec!["a"], vec!["b"]);
        let error = RequestRenderer::new(&job, &profile(), &batch.schema())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("`title`"), "{error}");
        assert!(error.contains("request.template"), "{error}");
        assert!(error.contains("`id`, `text`"), "{error}");
    }

    #[test]
    fn thinking_models_get_thinking_off_explicitly() {
        let mut job = job("", "");
        job.spec.request.model = "qwen3.5-plus".into();
        let batch = batch(vec!["a"], vec!["b"]);
        let renderer = RequestRenderer::new(&job, &profile(), &batch.schema()).unwrap();
        let line: Value =
            serde_json::from_slice(&request(renderer.render_row(&batch, 0, 1).unwrap()).line)
                .unwrap();
        assert_eq!(line["body"]["enable_thinking"], false);
    }

    #[test]
    fn declared_fields_go_into_the_prompt_where_schema_mode_is_not_accepted() {
        let job = job(
            "",
            "[[output.fields]]\nname = \"sentiment\"\ntype = \"label\"\nlabels = [\"pos\", \"neg\"]\n",
        );
        let batch = batch(vec!["a"], vec!["b"]);
        let renderer = RequestRenderer::new(&job, &profile(), &batch.schema()).unwrap();
        let line: Value =
            serde_json::from_slice(&request(renderer.render_row(&batch, 0, 1).unwrap()).line)
                .unwrap();
        assert_eq!(line["body"]["response_format"]["type"], "json_object");
        let system = line["body"]["messages"][0]["content"].as_str().unwrap();
        assert!(system.contains("JSON Schema"), "{system}");
        assert!(system.contains("\"neg\""), "{system}");

        let sim = ProviderProfile::for_kind(ProviderKind::Sim);
        let renderer = RequestRenderer::new(&job, &sim, &batch.schema()).unwrap();
        let line: Value =
            serde_json::from_slice(&request(renderer.render_row(&batch, 0, 1).unwrap()).line)
                .unwrap();
        assert_eq!(line["body"]["response_format"]["type"], "json_schema");
        assert_eq!(
            line["body"]["response_format"]["json_schema"]["schema"]["properties"]["sentiment"]["enum"]
                [0],
            "pos"
        );
    }

    #[test]
    fn over_long_id_names_the_row() {
        let job = job("", "");
        let long_id = "x".repeat(257);
        let batch = batch(vec!["ok", &long_id], vec!["a", "b"]);
        let renderer = RequestRenderer::new(&job, &profile(), &batch.schema()).unwrap();
        let error = renderer.render_row(&batch, 1, 2).unwrap_err().to_string();
        assert!(error.contains("row 2"), "{error}");
        assert!(error.contains("257 characters"), "{error}");
        let exactly_at_limit = "y".repeat(256);
        let batch = batch_with(&exactly_at_limit);
        assert!(renderer.render_row(&batch, 0, 1).is_ok());
    }

    #[test]
    fn an_empty_prompt_is_an_error_or_with_skip_empty_a_skipped_row() {
        let mut job = job("", "");
        job.spec.request.template = "{{ text }}".into();
        let batch = batch(vec!["a", "b"], vec!["fine", " \n "]);
        let renderer = RequestRenderer::new(&job, &profile(), &batch.schema()).unwrap();
        assert!(renderer.render_row(&batch, 0, 1).is_ok());
        let error = renderer
            .render_row(&batch, 1, 2)
            .unwrap_err()
            .with_line(Some(3))
            .to_string();
        assert!(error.contains("row 2 (line 3), column `text`"), "{error}");
        assert!(error.contains("skip_empty = true"), "{error}");
        assert_eq!(renderer.skipped_reason(&batch, 1, 2, "b").unwrap(), None);

        job.spec.input.skip_empty = true;
        let renderer = RequestRenderer::new(&job, &profile(), &batch.schema()).unwrap();
        match renderer.render_row(&batch, 1, 2).unwrap() {
            RenderedRow::Skipped(skipped) => {
                assert_eq!(skipped.custom_id, "b");
                assert!(
                    skipped.reason.contains("column `text` is empty"),
                    "{}",
                    skipped.reason
                );
            }
            RenderedRow::Request(_) => panic!("an empty prompt was rendered"),
        }
        assert!(
            renderer
                .skipped_reason(&batch, 1, 2, "b")
                .unwrap()
                .is_some()
        );
        assert!(
            renderer
                .skipped_reason(&batch, 0, 1, "a")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_column_a_template_cannot_show_is_refused_up_front() {
        let job = job("", "");
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Binary, false),
        ]);
        let error = RequestRenderer::new(&job, &profile(), &schema)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("column `text`"), "{error}");
        assert!(error.contains("Binary"), "{error}");
    }

    fn batch_with(id: &str) -> RecordBatch {
        batch(vec![id], vec!["t"])
    }

    /// The test job with the user template of a `template_render` fuzz input: byte 0 picks the
    /// fuzz target's job variant; the template runs to the first NUL.
    fn job_with_fuzz_template(reproducer: &[u8]) -> Job {
        let template = std::str::from_utf8(&reproducer[1..])
            .unwrap()
            .split('\0')
            .next()
            .unwrap();
        let mut job = job("", "");
        job.spec.request.template = template.to_owned();
        job
    }

    /// Found with the `template_render` fuzz target: nested loops over a long string rendered
    /// for minutes, hanging `validate` and `run`. Out of fuel, the template is an error instead.
    #[test]
    fn runaway_template_runs_out_of_fuel() {
        let mut job = job_with_fuzz_template(include_bytes!(
            "../fuzz/regressions/template_render/nested_loops_hang.bin"
        ));
        let short = batch(vec!["1"], vec!["t"]);
        match RequestRenderer::new(&job, &profile(), &short.schema()) {
            Ok(_) => panic!("the runaway template rendered"),
            Err(error) => assert!(error.to_string().contains("fuel"), "{error}"),
        }
        // The same loops over a column value fail when the row is rendered.
        job.spec.request.template =
            "{% for a in text %}{% for b in text %}{% for c in text %}{% endfor %}{% endfor %}{% endfor %}"
                .to_owned();
        let long_text = "x".repeat(1000);
        let long = batch(vec!["1"], vec![long_text.as_str()]);
        let renderer = RequestRenderer::new(&job, &profile(), &long.schema()).unwrap();
        let error = renderer.render_row(&long, 0, 1).unwrap_err().to_string();
        assert!(error.contains("row 1") && error.contains("fuel"), "{error}");
    }

    /// Found with the `template_render` fuzz target: `{% set s = "x" * 99999999 %}` then
    /// `{{ s ~ s ~ ... }}` built gigabytes of text and took the process down. Rendered within
    /// the template memory budget, it is a located error instead, and costs no more memory
    /// than the budget.
    #[test]
    fn a_template_that_builds_gigabytes_stops_at_the_memory_budget() {
        let mut job = job_with_fuzz_template(include_bytes!(
            "../fuzz/regressions/template_render/string_concat_oom.bin"
        ));
        let short = batch(vec!["1"], vec!["t"]);
        let error = match RequestRenderer::new(&job, &profile(), &short.schema()) {
            Ok(renderer) => match renderer.render_row(&short, 0, 1) {
                Ok(_) => panic!("the template rendered"),
                Err(error) => error.to_string(),
            },
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("MiB") && error.contains("simplify the template"),
            "{error}"
        );
        // A column's value doubled until it is too big fails at its row, naming it.
        job.spec.request.template = format!(
            "{{% set s = text %}}{}{{{{ s }}}}",
            "{% set s = s ~ s %}".repeat(30)
        );
        let renderer = RequestRenderer::new(&job, &profile(), &short.schema()).unwrap();
        let error = renderer.render_row(&short, 0, 1).unwrap_err().to_string();
        assert!(error.contains("row 1") && error.contains("`~`"), "{error}");
    }
}
