//! `slaf_tokenize(path, tokenizer := …, max_genes := …, …)`: one row per cell with the token
//! ids, attention mask (and scGPT values) the core tokenizers produce. Cells and genes are
//! selected as in `slaf_slice` (`cells`, `cell_filter`, `genes`, `gene_filter`); only the
//! selected genes take part in tokenization.

use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use slaf::slice::{open_shared_with, Selection};
use slaf::token_scan::{TokenScan, TokenizerSpec};

use crate::params::{self, BoxError};
use crate::types::copy_slice;

pub struct TokenizeBind {
    scan: TokenScan,
}

pub struct TokenizeInit {
    /// 0 = cell_integer_id, 1 = input_ids, 2 = attention_mask, 3 = values.
    columns: Vec<Option<usize>>,
}

pub struct SlafTokenize;

impl VTab for SlafTokenize {
    type BindData = TokenizeBind;
    type InitData = TokenizeInit;

    fn bind(bind: &BindInfo) -> Result<TokenizeBind, BoxError> {
        let path = params::positional_string(bind, 0, "slaf_tokenize: path")?;
        let selection = Selection {
            cells: params::named_selector(bind, "cells")?,
            genes: params::named_selector(bind, "genes")?,
            cell_filter: params::named_string(bind, "cell_filter")?,
            gene_filter: params::named_string(bind, "gene_filter")?,
        };
        let spec = TokenizerSpec {
            name: params::named_string(bind, "tokenizer")?.unwrap_or_else(|| "geneformer".into()),
            max_genes: params::named_count(bind, "max_genes")?,
            vocab_size: params::named_count(bind, "vocab_size")?,
            n_bins: params::named_count(bind, "n_bins")?,
            seed: params::named_count(bind, "seed")?.map(|s| s as u64),
            token_dictionary: params::named_string(bind, "token_dictionary")?,
            gene_median_file: params::named_string(bind, "gene_medians")?,
            ..TokenizerSpec::default()
        };
        let scan = TokenScan::new(
            open_shared_with(&path, params::named_storage_options(bind)?)?,
            &selection,
            &spec,
        )?;
        let id = |t| LogicalTypeHandle::from(t);
        bind.add_result_column("cell_integer_id", id(LogicalTypeId::UInteger));
        bind.add_result_column(
            "input_ids",
            LogicalTypeHandle::list(&id(LogicalTypeId::Bigint)),
        );
        bind.add_result_column(
            "attention_mask",
            LogicalTypeHandle::list(&id(LogicalTypeId::Boolean)),
        );
        if scan.has_values() {
            bind.add_result_column("values", LogicalTypeHandle::list(&id(LogicalTypeId::Float)));
        }
        Ok(TokenizeBind { scan })
    }

    fn init(init: &InitInfo) -> Result<TokenizeInit, BoxError> {
        let columns = init
            .get_column_indices()
            .into_iter()
            .map(|i| (i < 4).then_some(i as usize))
            .collect();
        init.set_max_threads(2);
        Ok(TokenizeInit { columns })
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), BoxError> {
        let Some(batch) = func.get_bind_data().scan.next_batch()? else {
            output.set_len(0);
            return Ok(());
        };
        let (n, l) = (batch.batch_size(), batch.seq_len);
        for (col, column) in func.get_init_data().columns.iter().enumerate() {
            match column {
                Some(0) => {
                    let ids: Vec<u32> = batch.cell_ids.iter().map(|&c| c as u32).collect();
                    copy_slice(&mut output.flat_vector(col), &ids);
                }
                Some(k) => {
                    let mut list = output.list_vector(col);
                    let mut child = list.child(n * l);
                    match k {
                        1 => copy_slice(&mut child, &batch.input_ids),
                        2 => copy_slice(&mut child, &batch.attention_mask),
                        _ => copy_slice(&mut child, batch.values.as_deref().unwrap_or_default()),
                    }
                    for row in 0..n {
                        list.set_entry(row, row * l, l);
                    }
                    list.set_len(n * l);
                }
                None => {}
            }
        }
        output.set_len(n);
        Ok(())
    }

    fn supports_pushdown() -> bool {
        true
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![params::varchar()])
    }

    fn named_parameters() -> Option<Vec<(String, LogicalTypeHandle)>> {
        Some(vec![
            ("storage_options".into(), params::varchar_map()),
            ("tokenizer".into(), params::varchar()),
            ("max_genes".into(), params::bigint()),
            ("vocab_size".into(), params::bigint()),
            ("n_bins".into(), params::bigint()),
            ("seed".into(), params::bigint()),
            ("cells".into(), params::any()),
            ("cell_filter".into(), params::varchar()),
            ("genes".into(), params::any()),
            ("gene_filter".into(), params::varchar()),
            ("token_dictionary".into(), params::varchar()),
            ("gene_medians".into(), params::varchar()),
        ])
    }
}
