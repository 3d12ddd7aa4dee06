"""ByteDance Seed: Seed-Coder and Seed-OSS (<seed:bos>role … <seed:eos> written with the tokenizer's bos/eos)."""

from engine.templates.template import register_template

_SEED = {
    "system": "{bos}system\n{content}{eos}",
    "user": "{bos}user\n{content}{eos}",
    "generation_prompt": "{bos}assistant\n",
    "assistant": "{content}{eos}",
}

register_template(
    name="seed_coder",
    description="Seed-Coder instruct (bos/eos-delimited roles, Seed-Coder's default system prompt)",
    default_system=(
        "You are an AI programming assistant, utilizing the Seed-Coder model, developed by ByteDance Seed, "
        "and you only answer questions related to computer science. For politically sensitive questions, "
        "security and privacy issues, and other non-computer science questions, you will refuse to answer.\n\n"
    ),
    **_SEED,
)

register_template(
    name="seed_oss",
    description="Seed-OSS with reasoning (<seed:think> blocks, <seed:tool_call> calls)",
    thought_words=("<seed:think>", "</seed:think>"),
    tool_format="seed_oss",
    **_SEED,
)
