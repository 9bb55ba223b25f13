//! Judging answers against the job's declared fields while remembering the last few short
//! answers judged: a classification job's answers are a handful of texts (`{"sentiment":
//! "positive"}`) repeated row after row, each then read once instead of once a row.

use super::join_pass::{judge_answer, mark_invalid_output};
use crate::job::Job;
use crate::output_fields::{FieldValue, parse_answer};
use crate::row_result::{RowResult, RowStatus};

/// Answers remembered at once, the oldest replaced first.
const REMEMBERED_ANSWERS: usize = 8;
/// Answers longer than this (free text, summaries) are seldom repeated: judged every time, and
/// never copied to be remembered.
const LONGEST_REMEMBERED_ANSWER: usize = 256;

/// Judges the answers of one join, as [`judge_answer`] does.
pub(super) struct AnswerJudge<'job> {
    job: &'job Job,
    /// Answers judged lately and what each gave: its fields' values, or why it does not fit.
    remembered: Vec<(String, Result<Vec<FieldValue>, String>)>,
    /// The entry of `remembered` the next new answer replaces, once it is full.
    next_replaced: usize,
    /// The values of the last answer judged without remembering.
    last_unremembered: Option<Vec<FieldValue>>,
}

impl<'job> AnswerJudge<'job> {
    pub(super) fn new(job: &'job Job) -> AnswerJudge<'job> {
        AnswerJudge {
            job,
            remembered: Vec::with_capacity(REMEMBERED_ANSWERS),
            next_replaced: 0,
            last_unremembered: None,
        }
    }

    /// The declared fields' values of `result`'s answer (`stored_content` when given, as for
    /// [`judge_answer`]), as [`judge_answer`] gives them; an answer that does not fit makes
    /// `result` an `invalid_output` one, as there.
    pub(super) fn judge(
        &mut self,
        result: &mut RowResult,
        stored_content: Option<&str>,
    ) -> Option<&[FieldValue]> {
        let fields = &self.job.spec.output.fields;
        let content = stored_content.or(result.content.as_deref());
        let remembered = result.status() == RowStatus::Ok
            && !fields.is_empty()
            && !self.job.is_embeddings()
            && content.is_none_or(|content| content.len() <= LONGEST_REMEMBERED_ANSWER);
        if !remembered {
            self.last_unremembered = judge_answer(self.job, result, stored_content);
            return self.last_unremembered.as_deref();
        }
        let content = content.unwrap_or("");
        let position = match self
            .remembered
            .iter()
            .position(|(answer, _)| answer == content)
        {
            Some(position) => position,
            None => {
                let outcome = parse_answer(fields, content);
                if self.remembered.len() < REMEMBERED_ANSWERS {
                    self.remembered.push((content.to_owned(), outcome));
                    self.remembered.len() - 1
                } else {
                    let position = self.next_replaced;
                    self.next_replaced = (position + 1) % REMEMBERED_ANSWERS;
                    let (answer, replaced_outcome) = &mut self.remembered[position];
                    answer.clear();
                    answer.push_str(content);
                    *replaced_outcome = outcome;
                    position
                }
            }
        };
        match &self.remembered[position].1 {
            Ok(values) => Some(values),
            Err(reason) => {
                mark_invalid_output(result, reason.clone());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelling_job() -> (tempfile::TempDir, Job) {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("in.csv"), "id,text\n1,a\n").unwrap();
        let job_file = directory.path().join("job.toml");
        std::fs::write(
            &job_file,
            "[input]\npath = \"in.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n[[output.fields]]\nname = \"sentiment\"\ntype = \"label\"\nlabels = [\"positive\", \"negative\"]\n[[output.fields]]\nname = \"score\"\ntype = \"integer\"\nrequired = false\n",
        )
        .unwrap();
        let job = crate::job::load_job(&job_file).unwrap();
        (directory, job)
    }

    fn answered(content: Option<&str>) -> RowResult {
        RowResult {
            status: Some(RowStatus::Ok),
            content: content.map(str::to_owned),
            ..RowResult::default()
        }
    }

    #[test]
    fn every_answer_is_judged_as_alone_whether_remembered_repeated_or_replaced() {
        let (_directory, job) = labelling_job();
        let long_answer = format!(
            "{{\"sentiment\":\"negative\",\"note\":\"{}\"}}",
            "x".repeat(300)
        );
        let mut answers: Vec<Option<String>> = vec![
            Some(r#"{"sentiment":"positive"}"#.into()),
            Some(r#"{"sentiment":"positive"}"#.into()),
            Some(r#"{"sentiment":"maybe"}"#.into()),
            Some(r#"{"sentiment":"maybe"}"#.into()),
            Some("not json".into()),
            None,
            Some(long_answer.clone()),
            Some(long_answer),
        ];
        // More distinct answers than are remembered, then the first ones again.
        answers.extend(
            (0..20).map(|score| Some(format!(r#"{{"sentiment":"negative","score":{score}}}"#))),
        );
        answers.extend(answers.clone());
        let mut judge = AnswerJudge::new(&job);
        for content in &answers {
            let mut alone = answered(content.as_deref());
            let expected = judge_answer(&job, &mut alone, None);
            let mut remembered = answered(content.as_deref());
            let values = judge
                .judge(&mut remembered, None)
                .map(<[FieldValue]>::to_vec);
            assert_eq!(values, expected, "{content:?}");
            // An answer the join writes from its store, not the result's own, is judged alike.
            let mut stored = answered(None);
            let stored_values = judge
                .judge(&mut stored, content.as_deref())
                .map(<[FieldValue]>::to_vec);
            assert_eq!(stored_values, expected, "{content:?}");
            for judged in [&remembered, &stored] {
                assert_eq!(judged.status, alone.status, "{content:?}");
                assert_eq!(judged.error_code, alone.error_code, "{content:?}");
                assert_eq!(judged.error_message, alone.error_message, "{content:?}");
            }
        }
        // A failed row is left as it is.
        let mut failed = RowResult::unanswered(None);
        assert_eq!(judge.judge(&mut failed, None), None);
        assert_eq!(failed.status(), RowResult::unanswered(None).status());
    }
}
