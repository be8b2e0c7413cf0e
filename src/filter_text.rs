//! Checks a user's filter string before it reaches Lance: it must be one SQL expression and
//! nothing else, within the size bounds of `crate::limits`.
//!
//! Lance parses a filter as the `WHERE` clause of `SELECT 1 FROM t WHERE {filter}` and keeps the
//! first statement, so text after a `;` was silently dropped (`'id < 3; garbage'` selected
//! three rows) and clauses such as `ORDER BY`/`LIMIT` were accepted. Here the filter is
//! tokenized with Lance's dialect and parsed as a single expression that must end the text.

use lance::deps::datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use lance::deps::datafusion::sql::sqlparser::keywords::Keyword;
use lance::deps::datafusion::sql::sqlparser::parser::Parser;
use lance::deps::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};
use crate::limits;

/// Lance's SQL dialect: generic SQL with backquoted identifiers.
#[derive(Debug, Default)]
struct LanceDialect(GenericDialect);

impl Dialect for LanceDialect {
    fn dialect(&self) -> std::any::TypeId {
        self.0.dialect()
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.0.supports_bitwise_shift_operators()
    }
}

/// Whether a token joins two operands (each one a level of the expression tree).
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::AND | Keyword::OR | Keyword::LIKE | Keyword::ILIKE | Keyword::BETWEEN
        ),
        Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Spaceship
        | Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::Ampersand
        | Token::Pipe
        | Token::Caret => true,
        _ => false,
    }
}

/// Fails unless `filter` is a single SQL expression of bounded size; `table` names the table
/// in the message.
pub fn check_filter(filter: &str, table: &str) -> Result<()> {
    let bad = |why: String| {
        Error::invalid_argument(format!(
            "invalid filter {filter:?} on table {table:?}: {why}"
        ))
    };
    if filter.len() > limits::MAX_FILTER_BYTES {
        return Err(Error::resource_limit(format!(
            "filter on table {table:?} is {} bytes long, above the limit of {}",
            filter.len(),
            limits::MAX_FILTER_BYTES
        )));
    }
    let dialect = LanceDialect::default();
    let tokens = Tokenizer::new(&dialect, filter)
        .tokenize()
        .map_err(|e| bad(e.to_string()))?;
    // Lance reads `a == b` as `a = b`: drop the second `=` as it does.
    let mut kept: Vec<Token> = Vec::with_capacity(tokens.len());
    for token in tokens {
        if token == Token::Eq && kept.last() == Some(&Token::Eq) {
            continue;
        }
        kept.push(token);
    }
    let operators = kept.iter().filter(|t| is_operator(t)).count();
    if operators > limits::MAX_FILTER_OPERATORS {
        return Err(Error::resource_limit(format!(
            "filter on table {table:?} has {operators} operators, above the limit of {} \
             (for long lists of values use `column IN (…)`)",
            limits::MAX_FILTER_OPERATORS
        )));
    }
    if kept
        .iter()
        .all(|t| matches!(t, Token::Whitespace(_) | Token::EOF))
    {
        return Err(bad("the filter is empty".into()));
    }
    let mut parser = Parser::new(&dialect).with_tokens(kept);
    parser.parse_expr().map_err(|e| bad(e.to_string()))?;
    let next = parser.next_token();
    match &next.token {
        Token::EOF => Ok(()),
        // A lone trailing `;` ends the expression; anything after one is another statement.
        Token::SemiColon if parser.next_token().token == Token::EOF => Ok(()),
        Token::SemiColon => Err(bad(
            "a filter is one expression; found ';' and more text after it".into(),
        )),
        other => {
            let rest: String = std::iter::once(other.to_string())
                .chain(std::iter::from_fn(|| {
                    let t = parser.next_token().token;
                    (t != Token::EOF).then(|| t.to_string())
                }))
                .collect::<String>();
            let rest: String = rest.chars().take(40).collect();
            Err(bad(format!(
                "a filter is one expression; unexpected text after it: {rest:?}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn kind(filter: &str) -> Option<ErrorKind> {
        check_filter(filter, "cells").err().map(|e| e.kind())
    }

    #[test]
    fn single_expressions_pass() {
        for ok in [
            "cell_integer_id < 3",
            "cell_type = 'B; cell' AND n_genes >= 10",
            "a == 1",
            "`odd name` IN ('x', 'y') OR b IS NULL",
            "x BETWEEN 1 AND 3 -- a comment",
            "NOT (a LIKE 'T%')",
            "c = 1;",
        ] {
            assert_eq!(kind(ok), None, "{ok}");
        }
    }

    #[test]
    fn anything_after_the_expression_is_an_error() {
        for bad in [
            "cell_integer_id < 3; garbage",
            "1=1; DROP TABLE x",
            "a = 1 ORDER BY a",
            "a = 1 LIMIT 5",
            "a = 1 b = 2",
            "a = 1)",
            "",
            "   ",
        ] {
            assert_eq!(kind(bad), Some(ErrorKind::InvalidArgument), "{bad:?}");
        }
        let err = check_filter("cell_integer_id < 3; garbage", "cells").unwrap_err();
        assert!(err.message().contains("found ';'"), "{err}");
        assert!(err.message().contains("\"cell_integer_id < 3; garbage\""));
    }

    #[test]
    fn pathological_sizes_are_bounded() {
        let chain = vec!["a = 1"; limits::MAX_FILTER_OPERATORS].join(" OR ");
        assert_eq!(kind(&chain), Some(ErrorKind::ResourceLimit));
        let long = format!(
            "a IN ({})",
            vec!["1"; limits::MAX_FILTER_BYTES / 2].join(",")
        );
        assert_eq!(kind(&long), Some(ErrorKind::ResourceLimit));
        let nested = format!("{}a = 1{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(kind(&nested), Some(ErrorKind::InvalidArgument));
        let in_list = format!("a IN ({})", vec!["'x'"; 5000].join(", "));
        assert_eq!(kind(&in_list), None);
    }

    /// Random token soup (deterministic seed, bounded count) never panics; whatever passes is
    /// one expression: the same text with `; x` appended never does.
    #[test]
    fn random_filters_never_panic() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let atoms = [
            "a", "b", "1", "'s'", "\"q\"", "`c d`", "=", "==", "<", "AND", "OR", "NOT", "(", ")",
            ";", ",", "IN", "IS", "NULL", "LIKE", "+", "-", "*", "'", "--", "/*", "\\", "é",
            "SELECT", "FROM", "LIMIT", " ", "\n",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..5000 {
            let n = 1 + rng.next_u32() as usize % 12;
            let text: Vec<&str> = (0..n)
                .map(|_| atoms[rng.next_u32() as usize % atoms.len()])
                .collect();
            let text = text.join(" ");
            let comment = text.contains("--") || text.contains("/*");
            if check_filter(&text, "t").is_ok() && !comment {
                let trimmed = text.trim_end().trim_end_matches(';');
                assert!(
                    check_filter(&format!("{trimmed}; x"), "t").is_err(),
                    "{text:?}"
                );
            }
        }
    }
}
