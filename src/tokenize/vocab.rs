//! Gene → token maps.
//!
//! Two layouts:
//! * **slaf** ([`Vocab::slaf`], slafdb-compatible): `PAD=0, CLS=1, SEP=2, MASK=3`, gene token =
//!   `gene_integer_id + 4`. With `vocab_size = Some(v)`, a gene whose token would be `>= v` is
//!   **out of the vocabulary**: the tokenizers drop it like a gene missing from a dictionary (it
//!   is neither ranked nor binned, and it does not count towards in-vocabulary totals). No token
//!   is ever `>= vocab_size` (slafdb lets such tokens overflow the embedding table).
//! * **dictionary** ([`Vocab::from_dictionary`], Geneformer / scGPT): tokens come from a
//!   dictionary keyed by gene name (e.g. Ensembl id); genes absent from it are dropped. Special
//!   tokens are looked up by the names `<pad>` (required), `<cls>`, `<eos>` and `<mask>`.

use super::dictionary::TokenDictionary;
use crate::{Error, Result};

/// slaf layout: padding.
pub const PAD: i64 = 0;
/// slaf layout: start of sequence (`<cls>`).
pub const CLS: i64 = 1;
/// slaf layout: separator, used as `<eos>` by Geneformer V2.
pub const SEP: i64 = 2;
/// slaf layout: mask token for masked-language-model training.
pub const MASK: i64 = 3;
/// slaf layout: gene token = `gene_integer_id + GENE_OFFSET`.
pub const GENE_OFFSET: i64 = 4;

/// Dictionary name of the padding token.
pub const PAD_NAME: &str = "<pad>";
/// Dictionary name of the start token.
pub const CLS_NAME: &str = "<cls>";
/// Dictionary name of the end token (Geneformer V2).
pub const EOS_NAME: &str = "<eos>";
/// Dictionary name of the mask token.
pub const MASK_NAME: &str = "<mask>";

/// Marks a gene without a token in a dictionary table.
const ABSENT: i64 = -1;

#[derive(Debug, Clone)]
enum GeneTokens {
    /// slaf layout: genes `< limit` have token `gene + GENE_OFFSET`.
    Offset { limit: u32 },
    /// Dictionary layout: token per gene_integer_id, `ABSENT` when not in the dictionary.
    Table(Vec<i64>),
}

/// A vocabulary: the token of each gene_integer_id of a dataset plus the special tokens.
#[derive(Debug, Clone)]
pub struct Vocab {
    genes: GeneTokens,
    n_genes: usize,
    pad: i64,
    cls: Option<i64>,
    eos: Option<i64>,
    mask: Option<i64>,
    size: usize,
}

impl Vocab {
    /// The slaf layout over a dataset of `n_genes` genes, optionally capped at `vocab_size`
    /// tokens (specials included). Genes whose token would be `>= vocab_size` are out of the
    /// vocabulary and get dropped by the tokenizers. `vocab_size` must leave room for the four
    /// specials (`> 4`).
    pub fn slaf(n_genes: usize, vocab_size: Option<usize>) -> Result<Self> {
        let n_genes_u32 = u32::try_from(n_genes).map_err(|_| {
            Error::invalid_argument(format!("vocabulary: {n_genes} genes exceed the u32 range"))
        })?;
        let natural = n_genes + GENE_OFFSET as usize;
        let size = match vocab_size {
            Some(v) if v <= GENE_OFFSET as usize => {
                return Err(Error::invalid_argument(format!(
                    "vocab_size {v} leaves no room for genes: the slaf layout reserves ids 0..=3 \
                     for PAD, CLS, SEP and MASK"
                )))
            }
            Some(v) => v,
            None => natural,
        };
        let limit = n_genes_u32.min((size - GENE_OFFSET as usize).min(u32::MAX as usize) as u32);
        Ok(Self {
            genes: GeneTokens::Offset { limit },
            n_genes,
            pad: PAD,
            cls: Some(CLS),
            eos: Some(SEP),
            mask: Some(MASK),
            size,
        })
    }

    /// The dictionary layout: `gene_names[g]` is the dictionary key (e.g. Ensembl id) of
    /// gene_integer_id `g`. Genes absent from `dict` are out of the vocabulary. `<pad>` must be
    /// present; `<cls>`, `<eos>` and `<mask>` are optional (tokenizers that need them check).
    pub fn from_dictionary<S: AsRef<str>>(
        dict: &TokenDictionary,
        gene_names: &[S],
    ) -> Result<Self> {
        let pad = *dict.get(PAD_NAME).ok_or_else(|| {
            Error::invalid_argument(format!(
                "token dictionary has no '{PAD_NAME}' entry (it has {} entries)",
                dict.len()
            ))
        })?;
        if u32::try_from(gene_names.len()).is_err() {
            return Err(Error::invalid_argument(format!(
                "vocabulary: {} genes exceed the u32 range",
                gene_names.len()
            )));
        }
        let table: Vec<i64> = gene_names
            .iter()
            .map(|name| dict.get(name.as_ref()).copied().unwrap_or(ABSENT))
            .collect();
        // Dictionary ids are validated as non-negative and unique when loaded, so the largest
        // id + 1 is the embedding size a model needs.
        let size = dict.values().copied().max().map_or(0, |m| m as usize + 1);
        Ok(Self {
            genes: GeneTokens::Table(table),
            n_genes: gene_names.len(),
            pad,
            cls: dict.get(CLS_NAME).copied(),
            eos: dict.get(EOS_NAME).copied(),
            mask: dict.get(MASK_NAME).copied(),
            size,
        })
    }

    /// Token of gene `gene`, or `None` when the gene is out of the vocabulary (or beyond
    /// `n_genes`).
    #[inline]
    pub fn token(&self, gene: u32) -> Option<i64> {
        match &self.genes {
            GeneTokens::Offset { limit } => {
                (gene < *limit).then_some(i64::from(gene) + GENE_OFFSET)
            }
            GeneTokens::Table(t) => match t.get(gene as usize) {
                Some(&tok) if tok != ABSENT => Some(tok),
                _ => None,
            },
        }
    }

    /// Number of genes of the dataset this vocabulary maps (valid gene ids are `0..n_genes`).
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Number of genes that have a token.
    pub fn n_in_vocabulary(&self) -> usize {
        match &self.genes {
            GeneTokens::Offset { limit } => *limit as usize,
            GeneTokens::Table(t) => t.iter().filter(|&&tok| tok != ABSENT).count(),
        }
    }

    /// Number of token ids (every id is `< size`): the embedding size a model needs.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Padding token id.
    pub fn pad(&self) -> i64 {
        self.pad
    }

    /// Start token id (`<cls>`), if the vocabulary has one.
    pub fn cls(&self) -> Option<i64> {
        self.cls
    }

    /// End token id (`<eos>`; `SEP` in the slaf layout), if the vocabulary has one.
    pub fn eos(&self) -> Option<i64> {
        self.eos
    }

    /// Mask token id (`<mask>`), if the vocabulary has one.
    pub fn mask(&self) -> Option<i64> {
        self.mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn slaf_layout_ids() {
        let v = Vocab::slaf(10, None).unwrap();
        assert_eq!(
            (v.pad(), v.cls(), v.eos(), v.mask()),
            (0, Some(1), Some(2), Some(3))
        );
        assert_eq!(v.token(0), Some(4));
        assert_eq!(v.token(9), Some(13));
        assert_eq!(v.token(10), None);
        assert_eq!(v.size(), 14);
        assert_eq!(v.n_in_vocabulary(), 10);
    }

    #[test]
    fn slaf_vocab_size_drops_overflowing_genes() {
        // vocab_size 8: tokens 4..=7, i.e. genes 0..=3; gene 4 would be token 8 -> dropped.
        let v = Vocab::slaf(10, Some(8)).unwrap();
        assert_eq!(v.token(3), Some(7));
        assert_eq!(v.token(4), None);
        assert_eq!(v.size(), 8);
        assert_eq!(v.n_in_vocabulary(), 4);
        // A cap above the natural size changes nothing but the reported size.
        let v = Vocab::slaf(2, Some(100)).unwrap();
        assert_eq!(v.token(1), Some(5));
        assert_eq!(v.token(2), None);
        assert_eq!(v.size(), 100);
        for bad in [0, 4] {
            let e = Vocab::slaf(10, Some(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn dictionary_layout() {
        let dict: TokenDictionary = [("<pad>", 0), ("<mask>", 1), ("ENSG_A", 2), ("ENSG_C", 5)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let v = Vocab::from_dictionary(&dict, &["ENSG_C", "ENSG_B", "ENSG_A"]).unwrap();
        assert_eq!(v.token(0), Some(5));
        assert_eq!(v.token(1), None);
        assert_eq!(v.token(2), Some(2));
        assert_eq!(v.token(3), None);
        assert_eq!(
            (v.pad(), v.mask(), v.cls(), v.eos()),
            (0, Some(1), None, None)
        );
        assert_eq!(v.size(), 6);
        assert_eq!(v.n_genes(), 3);
        assert_eq!(v.n_in_vocabulary(), 2);

        let no_pad: TokenDictionary = [("ENSG_A".to_string(), 2)].into_iter().collect();
        let e = Vocab::from_dictionary(&no_pad, &["ENSG_A"]).unwrap_err();
        assert!(e.message().contains("<pad>"), "{e}");
    }
}
