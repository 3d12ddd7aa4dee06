"""Which data to train on and how to turn it into token sequences."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option


@dataclass
class DataArguments:
    """Datasets, cutoff, splitting and packing."""

    dataset: str | None = option(None, "Comma-separated dataset names from dataset_info.json.")
    eval_dataset: str | None = option(None, "Comma-separated dataset names to evaluate on.")
    dataset_dir: str = option("data", "Folder holding dataset_info.json and the local dataset files.")
    media_dir: str | None = option(None, "Folder holding images, videos and audio files (defaults to dataset_dir).")
    cutoff_len: int = option(2048, "Longest token sequence; longer examples are truncated.", min=1, max=1_000_000,
                             step=1)
    max_samples: int | None = option(None, "Use at most this many rows of each dataset.", min=1)
    val_size: float = option(0.0, "Held-out share (0–1) or number of rows for evaluation.", min=0.0, step=0.01)
    packing: bool | None = option(None, "Pack several examples into each sequence (default: on for pt). SFT packing "
                                  "never lets examples attend to each other.")
    neat_packing: bool = option(False, "Pack SFT examples so that they never attend to each other: turns packing on "
                                "(our SFT packing always works this way).")
    padding_free: bool | None = option(None, "Feed each batch as one row without padding, examples kept apart "
                                       "(default: on for pt and sft when the model's attention supports it).")
    train_on_prompt: bool = option(False, "Also learn the prompt tokens, not only the replies.")
    mask_history: bool = option(False, "Learn only the last reply of each conversation.")
    mix_strategy: str = option("concat", "How several datasets are mixed.",
                               choices=["concat", "interleave_under", "interleave_over"])
    interleave_probs: str | None = option(None, "Comma-separated sampling probabilities for interleaving.")
    streaming: bool = option(False, "Stream the dataset instead of loading it; not supported by this engine (refused).")
    buffer_size: int = option(16384, "Shuffle buffer size when streaming.", min=1)
    preprocessing_num_workers: int | None = option(
        None, "Processes that tokenize pt/sft data (from 2000 rows on; at most one per CPU).", min=1)
    preprocessing_batch_size: int = option(1000, "Rows tokenized per batch.", min=1)
    overwrite_cache: bool = option(
        False, "Tokenize again even when the tokenization cache or tokenized_path holds the result.")
    tokenized_path: str | None = option(
        None, "Folder of tokenized pt/sft data: loaded when it holds some (datasets unread), else saved there.")
    ignore_pad_token_for_loss: bool = option(True, "Leave padding out of the loss.")
    eval_on_each_dataset: bool = option(False, "Evaluate on each eval dataset separately.")
    tool_format: str | None = option(None, "Override the template's tool-call format.")
    default_system: str | None = option(None, "System prompt used when a row has none.")
    enable_thinking: bool | None = option(True, "Thinking mode for reasoning templates (e.g. qwen3).")
    preserve_thinking: bool = option(False, "Keep the thinking of earlier assistant turns (by default only the last "
                                     "reply keeps its thinking, as reasoning models are served).")
    eval_num_beams: int | None = option(None, "Beam width when predicting on the eval data (default: num_beams).",
                                        min=1)
    identity_name: str = option("Studio Assistant", "Fills {{name}} in the identity dataset.")
    identity_author: str = option("the Studio team", "Fills {{author}} in the identity dataset.")
    data_shared_file_system: bool = option(False, "All nodes share one file system (multi-node).")

    def __post_init__(self) -> None:
        # LLaMA-Factory's meaning: neat packing is packing (ours never lets packed examples see each other).
        if self.neat_packing:
            self.packing = True
