//! Templates render within a memory budget, so no template can exhaust the machine.
//!
//! minijinja bounds a render's steps (fuel) and a single string repetition (100 MB), but not
//! what a template builds from them: `{% set s = s ~ s %}` ten times, a filter chain like
//! `replace("a", "aaaa")` repeated, or a `{% set %}` block that captures its own value twice
//! grow without limit and take gigabytes in a fraction of a second (found by the
//! `template_render` fuzz target). Here every template is compiled once more into an
//! *instrumented* program that runs on minijinja's own machine:
//! - `~` and `*` call checked versions that refuse before they would build more than the budget;
//! - every other instruction that builds a value (filters, `+`, function and method calls,
//!   list and map literals) is followed by a call that counts the value's size;
//! - literal text is emitted through the formatter, which counts every byte written, captured
//!   blocks and macro output included;
//! - the filters that can multiply their input in one step (`replace`, `join`, `indent`, `list`,
//!   `format`, `tojson`, `pprint`, `batch`, `slice`, `split`, `lines`, `string`, `escape`) check
//!   what they would build before they build it.
//!
//! The count is per row and only grows, so one row's render holds at most the budget plus one
//! step's overshoot. A prompt must fit one request line (a few megabytes), so the budget is far
//! above what any real template needs. The program is minijinja's unstable machinery, so the
//! minijinja version is pinned exactly in Cargo.toml; `template_budget::tests` and the render
//! tests prove each construct still renders as minijinja renders it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::machinery::{CompiledTemplate, Instruction, Instructions, TemplateConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};

/// What one row's render may build, in bytes: text made by `~`, `*`, filters and output, plus
/// [`BYTES_PER_ITEM`] for each item of a list or map it makes.
pub const TEMPLATE_MEMORY_BUDGET_BYTES: usize = 64 << 20;

/// What one item of a list or map costs in the budget (a value handle and its share of the list).
pub const BYTES_PER_ITEM: usize = 32;

/// What one row's render may take in time. A prompt renders in microseconds; a template that
/// loops over long text for longer stops with an error naming the row.
pub const TEMPLATE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The time limit in force, in milliseconds: [`TEMPLATE_TIME_LIMIT`] unless
/// [`set_render_time_limit`] lowered it (the fuzz target does, to keep its executions short).
static RENDER_TIME_LIMIT_MILLIS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(TEMPLATE_TIME_LIMIT.as_millis() as u64);

/// Sets the time limit of every later render in this process.
pub fn set_render_time_limit(limit: std::time::Duration) {
    RENDER_TIME_LIMIT_MILLIS.store(
        u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The work filters may do for one row, in bytes of input touched (`length` of a long text in a
/// loop, sorting long texts), so that a single step cannot run for minutes.
pub const WORK_BUDGET_BYTES: usize = 4 << 30;

/// Names the instrumented program calls; templates may not use names with this prefix.
pub const RESERVED_NAME_PREFIX: &str = "__dashbatch";
const COUNT_FUNCTION: &str = "__dashbatch_count";
const CONCAT_FUNCTION: &str = "__dashbatch_concat";
const MULTIPLY_FUNCTION: &str = "__dashbatch_multiply";
const TICK_FUNCTION: &str = "__dashbatch_tick";

thread_local! {
    /// Bytes built so far by the render running on this thread.
    static BUILT_BYTES: Cell<usize> = const { Cell::new(0) };
    /// Bytes of input filters have touched in the render running on this thread.
    static WORK_BYTES: Cell<usize> = const { Cell::new(0) };
    /// When the render running on this thread started.
    static RENDER_STARTED: Cell<Option<std::time::Instant>> = const { Cell::new(None) };
}

/// A template compiled into its instrumented program, owning its source text.
pub struct BudgetedTemplate(BudgetedProgramCell);

struct BudgetedProgram<'source> {
    instructions: Instructions<'source>,
    blocks: BTreeMap<&'source str, Instructions<'source>>,
    /// The template as text and variables only, when it is nothing more.
    plain: Option<Vec<PlainPart<'source>>>,
}

/// A piece of a template that is only text and `{{ variable }}`s, as minijinja compiled it
/// (whitespace control and the trailing newline already applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainPart<'source> {
    Text(&'source str),
    Variable(&'source str),
}

/// The pieces of a compiled template that only emits text and variables; `None` when it does
/// anything else (a filter, a test, an expression, a tag).
fn plain_parts<'source>(
    instructions: &Instructions<'source>,
    has_blocks: bool,
) -> Option<Vec<PlainPart<'source>>> {
    if has_blocks {
        return None;
    }
    let mut parts = Vec::new();
    let mut index = 0u32;
    while let Some(instruction) = instructions.get(index) {
        match instruction {
            Instruction::EmitRaw(text) => parts.push(PlainPart::Text(text)),
            Instruction::Lookup(name)
                if matches!(instructions.get(index + 1), Some(Instruction::Emit)) =>
            {
                parts.push(PlainPart::Variable(name));
                index += 1;
            }
            _ => return None,
        }
        index += 1;
    }
    Some(parts)
}

self_cell::self_cell!(
    struct BudgetedProgramCell {
        owner: String,
        #[covariant]
        dependent: BudgetedProgram,
    }
);

impl BudgetedTemplate {
    /// Compiles `source` (named `name` in errors) into its instrumented program.
    pub fn compile(name: &'static str, source: &str) -> Result<BudgetedTemplate, String> {
        if source.contains(RESERVED_NAME_PREFIX) {
            return Err(format!(
                "names beginning with `{RESERVED_NAME_PREFIX}` are reserved for dashbatch; rename it"
            ));
        }
        let cell = BudgetedProgramCell::try_new(numbers_unfolded(source)?, |source| {
            let config = TemplateConfig {
                syntax_config: SyntaxConfig::default(),
                default_auto_escape: Arc::new(|_| AutoEscape::None),
            };
            let compiled = CompiledTemplate::new(name, source, &config)
                .map_err(|error| format!("the template does not parse: {error}"))?;
            Ok::<_, String>(BudgetedProgram {
                plain: plain_parts(&compiled.instructions, !compiled.blocks.is_empty()),
                instructions: instrument(&compiled.instructions),
                blocks: compiled
                    .blocks
                    .iter()
                    .map(|(block, instructions)| (*block, instrument(instructions)))
                    .collect(),
            })
        })?;
        Ok(BudgetedTemplate(cell))
    }

    /// The template's pieces when it is only text and `{{ variable }}`s: filling them in gives
    /// what [`BudgetedTemplate::render`] gives for string values within the budget.
    pub fn plain_parts(&self) -> Option<&[PlainPart<'_>]> {
        self.0.borrow_dependent().plain.as_deref()
    }

    /// The source as compiled: the template with its integer literals unfolded.
    pub fn source(&self) -> &str {
        self.0.borrow_owner()
    }

    /// Renders the program with `context` in `environment` (one made by [`budgeted_environment`]),
    /// counting from zero.
    pub fn render(&self, environment: &Environment<'_>, context: Value) -> Result<String, Error> {
        BUILT_BYTES.with(|built| built.set(0));
        WORK_BYTES.with(|work| work.set(0));
        RENDER_STARTED.with(|started| started.set(Some(std::time::Instant::now())));
        let mut rendered = String::new();
        self.0.with_dependent(|_, program| {
            let mut output = minijinja::machinery::make_string_output(&mut rendered);
            minijinja::machinery::eval(
                environment,
                &program.instructions,
                context,
                &program.blocks,
                &mut output,
                AutoEscape::None,
            )
            .map(|_| ())
        })?;
        Ok(rendered)
    }
}

/// `source` with each number literal written `(N|int)` or `(N|float)`, which render the same.
///
/// minijinja works out expressions of literals once, while compiling (`[1] * 99999999` is a
/// list of a hundred million items before any row is rendered), outside any budget. Without
/// number literals, what it can work out is no longer than the template itself; the filter
/// runs per render, where it is counted. A number right after `.` (`items.0`) is an item name,
/// not an expression, and stays as written.
pub fn numbers_unfolded(source: &str) -> Result<String, String> {
    use minijinja::machinery::{Token, tokenize};
    let mut unfolded = String::with_capacity(source.len() + 16);
    let mut copied_up_to = 0usize;
    let mut after_dot = false;
    for token in tokenize(source, false, SyntaxConfig::default()) {
        let (token, span) =
            token.map_err(|error| format!("the template does not parse: {error}"))?;
        let filter = match token {
            Token::Int(_) | Token::Int128(_) => Some("int"),
            Token::Float(_) => Some("float"),
            _ => None,
        };
        if let Some(filter) = filter.filter(|_| !after_dot) {
            let start = span.start_offset as usize;
            let end = span.end_offset as usize;
            unfolded.push_str(&source[copied_up_to..start]);
            unfolded.push('(');
            unfolded.push_str(&source[start..end]);
            unfolded.push('|');
            unfolded.push_str(filter);
            unfolded.push(')');
            copied_up_to = end;
        }
        after_dot = matches!(token, Token::Dot);
    }
    unfolded.push_str(&source[copied_up_to..]);
    Ok(unfolded)
}

/// How many instructions `instruction` becomes in the instrumented program.
fn instrumented_length(instruction: &Instruction<'_>) -> u32 {
    match instruction {
        Instruction::EmitRaw(_) => 2,
        Instruction::Iterate(_) => 3,
        instruction if builds_value(instruction) => 2,
        _ => 1,
    }
}

/// Instructions whose result is counted by a call right after them (a slice copies its text). (`~` and `*` are replaced by
/// checked calls instead; captured output was counted as it was emitted.)
fn builds_value(instruction: &Instruction<'_>) -> bool {
    matches!(
        instruction,
        Instruction::ApplyFilter(..)
            | Instruction::Add
            | Instruction::CallFunction(..)
            | Instruction::CallMethod(..)
            | Instruction::CallObject(..)
            | Instruction::Slice
            | Instruction::BuildList(..)
            | Instruction::BuildTuple(..)
            | Instruction::BuildMap(..)
    )
}

/// `original` with literal text emitted through the formatter, `~` and `*` replaced by checked
/// calls and a counting call after every instruction that builds a value; jump targets and
/// source positions follow.
fn instrument<'source>(original: &Instructions<'source>) -> Instructions<'source> {
    let mut old_to_new = Vec::new();
    let mut next = 0u32;
    let mut index = 0u32;
    while let Some(instruction) = original.get(index) {
        old_to_new.push(next);
        next += instrumented_length(instruction);
        index += 1;
    }
    old_to_new.push(next);
    let target = |old: u32| old_to_new[old as usize];

    let mut program = Instructions::new(original.name(), original.source());
    let mut index = 0u32;
    while let Some(instruction) = original.get(index) {
        let span = original.get_span(index);
        let line = original
            .get_line(index)
            .and_then(|line| u16::try_from(line).ok());
        let mut add = |instruction: Instruction<'source>| match (span, line) {
            (Some(span), _) => program.add_with_span(instruction, span),
            (None, Some(line)) => program.add_with_line(instruction, line),
            (None, None) => program.add(instruction),
        };
        match instruction {
            Instruction::EmitRaw(text) => {
                add(Instruction::LoadConst(Value::from(*text)));
                add(Instruction::Emit);
            }
            Instruction::StringConcat => {
                add(Instruction::CallFunction(CONCAT_FUNCTION, Some(2)));
            }
            Instruction::Mul => {
                add(Instruction::CallFunction(MULTIPLY_FUNCTION, Some(2)));
            }
            Instruction::Jump(old) => {
                add(Instruction::Jump(target(*old)));
            }
            Instruction::JumpIfFalse(old) => {
                add(Instruction::JumpIfFalse(target(*old)));
            }
            Instruction::JumpIfFalseOrPop(old) => {
                add(Instruction::JumpIfFalseOrPop(target(*old)));
            }
            Instruction::JumpIfTrueOrPop(old) => {
                add(Instruction::JumpIfTrueOrPop(target(*old)));
            }
            Instruction::Iterate(old) => {
                // Every loop turn checks the time limit and signals (jumps back land on the tick).
                add(Instruction::CallFunction(TICK_FUNCTION, Some(0)));
                add(Instruction::DiscardTop);
                add(Instruction::Iterate(target(*old)));
            }
            Instruction::BuildMacro(name, old, flags) => {
                add(Instruction::BuildMacro(name, target(*old), *flags));
            }
            other if builds_value(other) => {
                add(other.clone());
                add(Instruction::CallFunction(COUNT_FUNCTION, Some(1)));
            }
            other => {
                add(other.clone());
            }
        }
        index += 1;
    }
    program
}

/// The error a render stops with when it would build more than the budget.
fn over_budget(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "{what} would take the text this row's template builds past {} MiB; a prompt must fit one request line, so simplify the template (or the data it repeats)",
            TEMPLATE_MEMORY_BUDGET_BYTES >> 20
        ),
    )
}

/// Adds `bytes` to this render's count, or fails naming `what` when the budget would be passed.
fn count_bytes(bytes: usize, what: &str) -> Result<(), Error> {
    BUILT_BYTES.with(|built| {
        let total = built.get().saturating_add(bytes);
        if total > TEMPLATE_MEMORY_BUDGET_BYTES {
            return Err(over_budget(what));
        }
        built.set(total);
        Ok(())
    })
}

/// The check every loop turn, filter call and counted step makes: the render has not run past
/// [`TEMPLATE_TIME_LIMIT`], and no signal asked the process to stop.
fn tick() -> Result<(), Error> {
    if let Some(interrupted) = crate::interrupt::received() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{interrupted} while rendering"),
        ));
    }
    let limit = std::time::Duration::from_millis(
        RENDER_TIME_LIMIT_MILLIS.load(std::sync::atomic::Ordering::Relaxed),
    );
    let started = RENDER_STARTED.with(Cell::get);
    if started.is_some_and(|started| started.elapsed() > limit) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "rendering this row took longer than {} s; a prompt template renders in microseconds, so simplify it (a loop over long text, or sorting long texts)",
                limit.as_secs_f64()
            ),
        ));
    }
    Ok(())
}

/// Adds `bytes` of input touched by the filter `filter` to this render's work, or fails.
fn count_work(bytes: usize, filter: &str) -> Result<(), Error> {
    WORK_BYTES.with(|work| {
        let total = work.get().saturating_add(bytes);
        if total > WORK_BUDGET_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "the filter `{filter}` would take the work this row's template does past {} GiB of text; simplify the template (a loop over long text, or sorting long texts)",
                    WORK_BUDGET_BYTES >> 30
                ),
            ));
        }
        work.set(total);
        Ok(())
    })
}

/// What is left of this render's budget.
fn remaining_budget() -> usize {
    TEMPLATE_MEMORY_BUDGET_BYTES.saturating_sub(BUILT_BYTES.with(Cell::get))
}

/// A `fmt::Write` that only counts, and stops once past `limit`.
struct CountingWriter {
    count: usize,
    limit: usize,
}

impl fmt::Write for CountingWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.count = self.count.saturating_add(text.len());
        if self.count > self.limit {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Bytes `value` takes when shown as text, or `None` when more than `limit`. Counted without
/// building the text.
fn shown_length(value: &Value, limit: usize) -> Option<usize> {
    if let Some(text) = value.as_str() {
        return (text.len() <= limit).then_some(text.len());
    }
    let mut counter = CountingWriter { count: 0, limit };
    fmt::write(&mut counter, format_args!("{value}")).ok()?;
    Some(counter.count)
}

/// Items in a list, map or other iterable value, counted up to `limit` (then `limit + 1`).
fn item_count(value: &Value, limit: usize) -> usize {
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            match value.try_iter() {
                Ok(items) => items.take(limit.saturating_add(1)).count(),
                Err(_) => 0,
            }
        }
        _ => 0,
    }
}

/// How many items `value` holds at every level, and how deep it nests; `None` past `limit` items.
fn items_and_depth(value: &Value, limit: usize) -> Option<(usize, usize)> {
    if value.as_str().is_some()
        || !matches!(
            value.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
        )
    {
        return Some((1, 0));
    }
    let mut items = 0usize;
    let mut deepest = 0usize;
    for item in value.try_iter().ok()? {
        let member = if value.kind() == ValueKind::Map {
            value.get_item(&item).ok()?
        } else {
            item
        };
        let (inner_items, inner_depth) = items_and_depth(&member, limit.checked_sub(items)?)?;
        items = items.saturating_add(inner_items).saturating_add(1);
        deepest = deepest.max(inner_depth);
        if items > limit {
            return None;
        }
    }
    Some((items, deepest + 1))
}

/// The bytes `value` counts for in the budget: its text, or its items.
fn budget_size(value: &Value) -> usize {
    if let Some(text) = value.as_str() {
        return text.len();
    }
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            let limit = remaining_budget() / BYTES_PER_ITEM;
            item_count(value, limit).saturating_mul(BYTES_PER_ITEM)
        }
        _ => 0,
    }
}

/// The counting call after each value-building instruction: counts `value` and returns it.
fn count_built_value(value: Value) -> Result<Value, Error> {
    tick()?;
    count_bytes(budget_size(&value), "a value")?;
    Ok(value)
}

/// `left ~ right`, refused before it is built when too long; otherwise as minijinja builds it.
fn checked_concat(left: Value, right: Value) -> Result<Value, Error> {
    let limit = remaining_budget();
    let left_length = shown_length(&left, limit).ok_or_else(|| over_budget("`~`"))?;
    let right_length =
        shown_length(&right, limit - left_length).ok_or_else(|| over_budget("`~`"))?;
    count_bytes(left_length + right_length, "`~`")?;
    Ok(Value::from(format!("{left}{right}")))
}

/// An environment without the instrumented program's helpers, where `*` runs as minijinja's.
fn plain_environment() -> &'static Environment<'static> {
    static PLAIN: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    PLAIN.get_or_init(Environment::new)
}

/// `left * right`: a repeated text or list is refused before it is built when too big; the
/// product itself is minijinja's.
fn checked_multiply(left: Value, right: Value) -> Result<Value, Error> {
    let repeated_size = |value: &Value, times: &Value| -> Option<usize> {
        // The count as minijinja reads it for a repetition.
        let times = times.as_usize()?;
        let unit = if let Some(text) = value.as_str() {
            text.len()
        } else if matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
            item_count(value, usize::MAX).saturating_mul(BYTES_PER_ITEM)
        } else {
            return None;
        };
        Some(unit.saturating_mul(times))
    };
    if let Some(size) = repeated_size(&left, &right).or_else(|| repeated_size(&right, &left)) {
        count_bytes(size, "`*`")?;
    }
    // Compiled once: `*` is on the path of every row whose template multiplies.
    static PRODUCT: std::sync::OnceLock<minijinja::Expression<'static, 'static>> =
        std::sync::OnceLock::new();
    PRODUCT
        .get_or_init(|| {
            plain_environment()
                .compile_expression("left * right")
                .expect("the product expression compiles")
        })
        .eval(minijinja::context! { left => left, right => right })
}

/// The formatter of a budgeted environment: counts every byte written (output, captured blocks
/// and macro output), writes an empty cell (none) as nothing, and otherwise writes as minijinja.
fn counting_formatter(output: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    tick()?;
    if value.is_none() {
        return Ok(());
    }
    let length = shown_length(value, remaining_budget()).ok_or_else(|| over_budget("output"))?;
    count_bytes(length, "output")?;
    minijinja::escape_formatter(output, state, value)
}

/// What a filter call would build at most, in bytes, judged from its arguments before it runs;
/// `None` when that is more than `limit`. Filters not listed cannot build more than a small
/// multiple of their input, and are counted after they run.
fn filter_output_bound(filter: &str, arguments: &[Value], limit: usize) -> Option<usize> {
    let argument = |index: usize| arguments.get(index);
    let text_argument = |index: usize| argument(index).and_then(Value::as_str).unwrap_or("");
    let number_argument = |index: usize| {
        argument(index)
            .and_then(|value| i64::try_from(value.clone()).ok())
            .and_then(|number| usize::try_from(number.max(0)).ok())
            .unwrap_or(0)
    };
    let shown = |index: usize| match argument(index) {
        Some(value) => shown_length(value, limit),
        None => Some(0),
    };
    let items = |index: usize| argument(index).map_or(0, |value| item_count(value, limit));
    let within = |bytes: usize| (bytes <= limit).then_some(bytes);
    match filter {
        "replace" => {
            let text = argument(0)?;
            let length = shown_length(text, limit)?;
            let from = text_argument(1);
            let to_length = shown(2)?;
            if !from.is_empty() && to_length <= from.len() {
                return Some(length);
            }
            let occurrences = match text.as_str() {
                Some(text) if from.is_empty() => text.chars().count() + 1,
                Some(text) => text.matches(from).count(),
                None => length + 1,
            };
            within(occurrences.saturating_mul(to_length).saturating_add(length))
        }
        "join" => {
            let separator = shown(1)?;
            let mut total = 0usize;
            if let Some(Ok(values)) = argument(0).map(Value::try_iter) {
                for value in values {
                    let room = limit.checked_sub(total)?;
                    total = total
                        .saturating_add(shown_length(&value, room)?)
                        .saturating_add(separator);
                }
            }
            within(total)
        }
        "indent" => {
            let text = argument(0)?;
            let length = shown_length(text, limit)?;
            let lines = text.as_str().map_or(length, |text| text.lines().count()) + 1;
            within(
                lines
                    .saturating_mul(number_argument(1))
                    .saturating_add(length),
            )
        }
        "format" => {
            let pattern = shown(0)?;
            // Each `%` field shows one argument (a `%(key)s` may show the same one many times),
            // padded to any width in the pattern (`%99999s`).
            let mut largest_argument = 0usize;
            for index in 1..arguments.len() {
                largest_argument = largest_argument.max(shown(index)?);
            }
            let widest = text_argument(0)
                .split(|character: char| !character.is_ascii_digit())
                .filter_map(|digits| digits.parse::<usize>().ok())
                .max()
                .unwrap_or(0);
            let fields = text_argument(0).matches('%').count();
            within(
                fields
                    .saturating_mul(largest_argument.max(widest))
                    .saturating_add(pattern),
            )
        }
        "list" | "unique" | "sort" | "reverse" | "dictsort" | "items" => {
            let value = argument(0)?;
            let count = match value.as_str() {
                Some(text) => text.chars().count(),
                None => items(0),
            };
            within(count.saturating_mul(BYTES_PER_ITEM))
        }
        "batch" | "slice" => within(
            items(0)
                .saturating_add(number_argument(1))
                .saturating_mul(BYTES_PER_ITEM * 2),
        ),
        "split" | "lines" => {
            let text = text_argument(0);
            let pieces = match (filter, argument(1).and_then(Value::as_str)) {
                ("split", Some(separator)) if !separator.is_empty() => {
                    text.matches(separator).count() + 1
                }
                ("split", _) => text.split_whitespace().count(),
                _ => text.lines().count(),
            };
            within(
                pieces
                    .saturating_mul(BYTES_PER_ITEM)
                    .saturating_add(text.len()),
            )
        }
        "string" | "title" | "upper" | "lower" | "capitalize" => {
            // Case mapping can triple a character's bytes.
            within(shown(0)?.saturating_mul(3))
        }
        "escape" | "e" | "urlencode" => within(shown(0)?.saturating_mul(9)),
        "tojson" => {
            // JSON is about as long as the value shown; escaping `<`, `>`, `&` and `'` takes six
            // bytes each, and indentation adds up to `indent` bytes per item.
            let indent = argument(1)
                .and_then(|value| match value.get_attr("indent") {
                    Ok(indent) if !indent.is_undefined() => i64::try_from(indent).ok(),
                    _ => i64::try_from(value.clone()).ok(),
                })
                .and_then(|indent| usize::try_from(indent.max(0)).ok())
                .unwrap_or(0)
                .max(2);
            let (items, depth) = items_and_depth(argument(0)?, limit)?;
            within(
                shown(0)?.saturating_mul(6).saturating_add(
                    items
                        .saturating_add(2)
                        .saturating_mul(indent.saturating_mul(depth).saturating_add(2)),
                ),
            )
        }
        "pprint" => {
            let mut counter = CountingWriter { count: 0, limit };
            fmt::write(&mut counter, format_args!("{:#?}", argument(0)?)).ok()?;
            within(counter.count)
        }
        _ => Some(0),
    }
}

/// Refuses a `format` pattern whose `%(key)` holds a character outside ASCII: minijinja 3.0.5
/// reads such a key byte by byte and panics inside the character (found by the
/// `template_render` fuzz target with a cell as the pattern; a Chinese key such as `%(名字)s`
/// does it too).
fn check_format_pattern(arguments: &[Value]) -> Result<(), Error> {
    let Some(pattern) = arguments.first().and_then(Value::as_str) else {
        return Ok(());
    };
    let mut rest = pattern;
    while let Some(percent) = rest.find('%') {
        let after = &rest[percent + 1..];
        if let Some(escaped) = after.strip_prefix('%') {
            rest = escaped;
            continue;
        }
        if let Some(key_and_more) = after.strip_prefix('(') {
            let key = key_and_more
                .split_once(')')
                .map_or(key_and_more, |(key, _)| key);
            if !key.is_ascii() {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "the filter `format` cannot read the key `%({key})`: keys in `%(key)s` must be ASCII; pass the value by position (`%s`) instead"
                    ),
                ));
            }
        }
        rest = after;
    }
    Ok(())
}

/// Every built-in filter, by name: each runs through the budget's wrapper.
fn builtin_filters() -> Vec<(&'static str, Value)> {
    use minijinja::filters;
    vec![
        ("safe", Value::from_function(filters::safe)),
        ("escape", Value::from_function(filters::escape)),
        ("e", Value::from_function(filters::escape)),
        ("lower", Value::from_function(filters::lower)),
        ("upper", Value::from_function(filters::upper)),
        ("title", Value::from_function(filters::title)),
        ("capitalize", Value::from_function(filters::capitalize)),
        ("replace", Value::from_function(filters::replace)),
        ("length", Value::from_function(filters::length)),
        ("count", Value::from_function(filters::length)),
        ("dictsort", Value::from_function(filters::dictsort)),
        ("items", Value::from_function(filters::items)),
        ("reverse", Value::from_function(filters::reverse)),
        ("trim", Value::from_function(filters::trim)),
        ("join", Value::from_function(filters::join)),
        ("split", Value::from_function(filters::split)),
        ("lines", Value::from_function(filters::lines)),
        ("default", Value::from_function(filters::default)),
        ("d", Value::from_function(filters::default)),
        ("round", Value::from_function(filters::round)),
        ("abs", Value::from_function(filters::abs)),
        ("int", Value::from_function(filters::int)),
        ("float", Value::from_function(filters::float)),
        ("attr", Value::from_function(filters::attr)),
        ("first", Value::from_function(filters::first)),
        ("last", Value::from_function(filters::last)),
        ("min", Value::from_function(filters::min)),
        ("max", Value::from_function(filters::max)),
        ("sort", Value::from_function(filters::sort)),
        ("list", Value::from_function(filters::list)),
        ("string", Value::from_function(filters::string)),
        ("bool", Value::from_function(filters::bool)),
        ("batch", Value::from_function(filters::batch)),
        ("slice", Value::from_function(filters::slice)),
        ("sum", Value::from_function(filters::sum)),
        ("indent", Value::from_function(filters::indent)),
        ("select", Value::from_function(filters::select)),
        ("reject", Value::from_function(filters::reject)),
        ("selectattr", Value::from_function(filters::selectattr)),
        ("rejectattr", Value::from_function(filters::rejectattr)),
        ("map", Value::from_function(filters::map)),
        ("groupby", Value::from_function(filters::groupby)),
        ("unique", Value::from_function(filters::unique)),
        ("chain", Value::from_function(filters::chain)),
        ("zip", Value::from_function(filters::zip)),
        ("pprint", Value::from_function(filters::pprint)),
        ("format", Value::from_function(filters::format)),
        ("tojson", Value::from_function(filters::tojson)),
    ]
}

/// The work a filter call does on its input, in bytes touched: its text, or its items' text;
/// sorting and deduplicating compare each item about log2(n) times.
fn filter_work(filter: &str, arguments: &[Value]) -> usize {
    let Some(input) = arguments.first() else {
        return 0;
    };
    if let Some(text) = input.as_str() {
        return text.len();
    }
    let limit = WORK_BUDGET_BYTES;
    let Ok(items) = input.try_iter() else {
        return 0;
    };
    let mut count = 0usize;
    let mut bytes = 0usize;
    for item in items.take(limit) {
        count += 1;
        bytes = bytes.saturating_add(item.as_str().map_or(BYTES_PER_ITEM, str::len));
        if bytes > limit {
            break;
        }
    }
    match filter {
        "sort" | "unique" | "dictsort" | "groupby" | "min" | "max" => {
            let comparisons = usize::BITS - count.leading_zeros();
            bytes.saturating_mul(comparisons.max(1) as usize)
        }
        _ => bytes,
    }
}

/// A minijinja environment whose templates, rendered through [`BudgetedTemplate`], stay within
/// the budget: the counting formatter, the checked filters and the helper calls. `debug()`,
/// which prints everything a render holds at once, is not offered.
pub fn budgeted_environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_formatter(counting_formatter);
    environment.remove_global("debug");
    for (name, original) in builtin_filters() {
        environment.add_filter(
            name,
            move |state: &mut State, arguments: Rest<ValueOrKwargs>| -> Result<Value, Error> {
                let arguments: Vec<Value> = arguments
                    .0
                    .into_iter()
                    .map(ValueOrKwargs::into_value)
                    .collect();
                tick()?;
                count_work(filter_work(name, &arguments), name)?;
                if name == "format" {
                    check_format_pattern(&arguments)?;
                }
                let limit = remaining_budget();
                if filter_output_bound(name, &arguments, limit).is_none() {
                    return Err(over_budget(&format!("the filter `{name}`")));
                }
                let output = original.call(state, &arguments)?;
                // Counted here too, so a filter called item by item (`map`) is counted per item.
                count_bytes(budget_size(&output), &format!("the filter `{name}`"))?;
                Ok(output)
            },
        );
    }
    environment.add_function(TICK_FUNCTION, tick);
    environment.add_function(COUNT_FUNCTION, count_built_value);
    environment.add_function(CONCAT_FUNCTION, checked_concat);
    environment.add_function(MULTIPLY_FUNCTION, checked_multiply);
    environment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, context: Value) -> Result<String, Error> {
        let environment = budgeted_environment();
        BudgetedTemplate::compile("test", source)
            .expect("compiles")
            .render(&environment, context)
    }

    fn plain(source: &str, context: Value) -> String {
        let mut environment = Environment::new();
        environment.set_formatter(|output, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(output, state, value)
            }
        });
        environment
            .render_str(source, context)
            .expect("minijinja renders it")
    }

    /// Every construct a prompt template uses renders exactly as minijinja renders it.
    #[test]
    fn instrumented_templates_render_as_minijinja_does() {
        let context = minijinja::context! {
            text => "Hello <world> & 'you'",
            items => vec!["b", "a", "c"],
            n => 3,
            x => 2.5,
            empty => Value::from(()),
        };
        let templates = [
            "plain text only",
            "{{ text }} / {{ n }} / {{ x }} / [{{ empty }}]",
            "{{ text ~ ' ' ~ n }}{% set s = text ~ text %}{{ s | length }}",
            "{{ '-' * 5 }} {{ n * 4 }} {{ x * 2 }} {{ [1, 2] * 2 }} {{ 3 * 'ab' }}",
            "{{ n + 1 }} {{ items + ['d'] }} {{ x - 1 }} {{ n / 2 }} {{ n // 2 }} {{ n % 2 }} {{ 2 ** 3 }}",
            "{% for item in items %}{{ loop.index }}:{{ item }}{% if not loop.last %}, {% endif %}{% endfor %}",
            "{% for item in [] %}x{% else %}none{% endfor %}",
            "{% if n > 2 and text %}big{% elif n %}small{% else %}zero{% endif %}",
            "{{ text | replace('o', '0') | upper }} {{ items | join(', ') }} {{ items | sort | list }}",
            "{{ text | indent(2) }} {{ '%s-%d' | format('a', 7) }} {{ items | tojson }} {{ text | tojson }}",
            "{{ text | split | list }} {{ 'a\nb' | lines | list }} {{ items | batch(2) | list }} {{ items | reverse | list }}",
            "{{ text | title }} {{ text | lower }} {{ text | capitalize }} {{ text | escape }} {{ n | string }}",
            "{{ items | unique | list }} {{ {'b': 1, 'a': 2} | dictsort }} {{ {'a': 1} | items | list }} {{ items | slice(2) | list }}",
            "{% set block %}inside {{ n }}{% endset %}[{{ block }}]",
            "{% macro greet(name) %}hi {{ name }}{% endmacro %}{{ greet('a') }} {{ greet(text) }}",
            "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}called{% endcall %}",
            "{% set ns = namespace(total=0) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}",
            "{% filter upper %}shout {{ text }}{% endfilter %}",
            "{% with a = 1 %}{{ a }}{% endwith %} {{ text if n else 'no' }} {{ items[0] }} {{ text[1:3] }}",
            "{% for row in [[1, 2], [3]] recursive %}{{ row }}{% endfor %} {{ dict(a=1).a }} {{ items | first }}",
            "{% block body %}in a block {{ n }}{% endblock %}",
            "{{ (text ~ text) | length }} {{ items | map('upper') | join }} {{ items | select('ne', 'a') | list }}",
        ];
        for source in templates {
            assert_eq!(
                render(source, context.clone())
                    .unwrap_or_else(|error| panic!("{source}: {error:#}")),
                plain(source, context.clone()),
                "{source}"
            );
        }
    }

    /// Each way of building without bound found by fuzzing, or reasoned from it, stops with an
    /// error that says what went over, instead of taking the machine's memory.
    #[test]
    fn templates_that_grow_without_bound_stop_with_an_error() {
        let doubling = format!(
            "{{% set s = 'x' * 1000000 %}}{}{{{{ s }}}}",
            "{% set s = s ~ s %}".repeat(40)
        );
        let capture_doubling = format!(
            "{{% set s = 'x' * 1000000 %}}{}{{{{ s }}}}",
            "{% set s %}{{ s }}{{ s }}{% endset %}".repeat(40)
        );
        let cases = [
            ("{% set s = \"x\" * 99999999 %}{{ s ~ s ~ s ~ s }}", "`*`"),
            (
                "{{ [1] * 99999999 }}{{ ('x' * 99999999) ~ ('y' * 99999999) }}",
                "`*`",
            ),
            ("{% set s = 'x' * 60000000 %}{{ s ~ s ~ s ~ s }}", "`~`"),
            (doubling.as_str(), "`~`"),
            (capture_doubling.as_str(), "output"),
            (
                "{{ ('x' * 1000000) | replace('x', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') | replace('x', 'xxxxxxxxxx') }}",
                "replace",
            ),
            ("{{ ('ab' * 100000) | replace('', 'x' * 1000) }}", "replace"),
            ("{{ ([('x' * 1000000)] * 1000) | join }}", "join"),
            ("{{ ('x' * 3000000) | list }}", "list"),
            ("{{ ('\n' * 1000000) | indent(1000) }}", "indent"),
            ("{{ '%99999999s' | format('a') }}", "format"),
            ("{{ [1] | batch(99999999, 'x') }}", "batch"),
            ("{{ [1] * 99999999 }}", "`*`"),
            ("{{ 'x' * 99999999.0 }}", "`*`"),
            (
                "{% set s = 'x' * 30000000 %}{% set a = s[1:] %}{% set b = s[2:] %}{% set c = s[3:] %}",
                "a value",
            ),
            (
                "{% set l = [1, 2] %}{% set l = l + l %}{% set l = l + l %}{{ (l * 9999999) | length }}",
                "`*`",
            ),
            (
                "{% set s = 'x' * 1000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
                "output",
            ),
            (
                "{% for i in range(100000) %}{% for j in range(100) %}literal text{% endfor %}{% endfor %}",
                "output",
            ),
            (
                "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                "`~`",
            ),
            (
                "{% macro m(s) %}{{ s }}{{ s }}{% endmacro %}{% set a = 'x' * 10000000 %}{{ m(m(m(m(a)))) }}",
                "output",
            ),
            (
                "{{ ([('x' * 1000000) ~ ''] * 30) | tojson(indent=99999) }}",
                "tojson",
            ),
            // Found by a hostile pass: one key shown many times, deep nesting with a wide
            // indent, and filters applied item by item through `map`.
            (
                "{% set s = 'y' * 2000000 %}{{ ('%(a)s' * 3000) | format({'a': s}) | length }}",
                "format",
            ),
            (
                "{% set l = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] %}{{ l | tojson(500000) | length }}",
                "tojson",
            ),
            (
                "{% set s = 'x\\ny' %}{{ ([s] * 40) | map('indent', 20000000) | map('length') | list }}",
                "indent",
            ),
            (
                "{% set s = 'y' * 10000000 %}{{ ([s] * 40) | map('upper') | list | length }}",
                "upper",
            ),
            (
                "{% set s = 'y' * 10000000 %}{{ ([s] * 40) | map('replace', 'y', 'zz') | list | length }}",
                "replace",
            ),
        ];
        for (source, what) in cases {
            let error = match render(source, Value::from(())) {
                Ok(rendered) => panic!("{source}: rendered {} bytes", rendered.len()),
                Err(error) => error.to_string(),
            };
            assert!(
                error.contains(what) && error.contains("MiB"),
                "{source}: {error}"
            );
        }
    }

    #[test]
    fn number_literals_are_unfolded_except_item_names() {
        assert_eq!(
            numbers_unfolded("a 1 {{ x.0 + 12 * 1.5 }}{% for i in range(3) %}{% endfor %}")
                .unwrap(),
            "a 1 {{ x.0 + (12|int) * (1.5|float) }}{% for i in range((3|int)) %}{% endfor %}"
        );
    }

    /// Found with the `template_render` fuzz target: a `format` pattern (here a cell's value)
    /// with a character outside ASCII inside `%( )` made minijinja panic; it is an error instead.
    #[test]
    fn a_format_key_outside_ascii_is_an_error_not_a_panic() {
        let reproducer =
            include_bytes!("../fuzz/regressions/template_render/format_key_not_ascii.bin");
        let cells = String::from_utf8_lossy(&reproducer[1..]).into_owned();
        let pattern = cells.split('\0').nth(2).expect("the cell `a`").to_owned();
        let error = render("{{ a | format }}", minijinja::context! { a => pattern })
            .expect_err("refused")
            .to_string();
        assert!(error.contains("must be ASCII"), "{error}");
        let error = render("{{ '%(名字)s' | format({'名字': 'x'}) }}", Value::from(()))
            .expect_err("refused")
            .to_string();
        assert!(error.contains("`%(名字)`"), "{error}");
        assert_eq!(
            render("{{ '100%% %(n)s, %s' | format('x') }}", Value::from(())).is_ok(),
            plain_renders("{{ '100%% %(n)s, %s' | format('x') }}")
        );
        assert_eq!(
            render("{{ '%s%%(名)' | format('x') }}", Value::from(())).unwrap(),
            plain("{{ '%s%%(名)' | format('x') }}", Value::from(()))
        );
    }

    fn plain_renders(source: &str) -> bool {
        Environment::new().render_str(source, ()).is_ok()
    }

    /// Found by a hostile pass: a single step over long text in a loop (`length` of 60 MB a
    /// thousand times) or sorting long texts ran for minutes; the work budget stops it quickly.
    #[test]
    fn long_work_in_one_step_stops_at_the_work_budget() {
        let started = std::time::Instant::now();
        for source in [
            "{% set s = 'x' * 60000000 %}{% for c in 'x' * 1000 %}{% if s | length > 0 %}{% endif %}{% endfor %}",
            "{% set s = 'y' * 10000000 %}{{ ([s ~ 'z'] * 20000) | sort | length }}",
        ] {
            let error = render(source, Value::from(()))
                .expect_err(source)
                .to_string();
            assert!(
                error.contains("GiB") && error.contains("work"),
                "{source}: {error}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn reserved_names_are_refused() {
        let error = BudgetedTemplate::compile("t", "{{ __dashbatch_concat(a, b) }}")
            .err()
            .expect("refused");
        assert!(error.contains("reserved"), "{error}");
    }

    #[test]
    fn each_render_counts_from_zero() {
        let environment = budgeted_environment();
        let template = BudgetedTemplate::compile("t", "{{ 'x' * 30000000 }}").expect("compiles");
        for _ in 0..3 {
            assert_eq!(
                template
                    .render(&environment, Value::from(()))
                    .expect("renders")
                    .len(),
                30_000_000
            );
        }
    }
}
