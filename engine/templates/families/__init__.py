"""The registered chat formats, one module per model family; importing this package registers them all."""

from engine.templates.families import (  # noqa: F401  (imported for their register_template calls)
    allenai,
    baidu,
    bytedance,
    chinese,
    community,
    deepseek,
    generic,
    google,
    huggingface,
    ibm,
    liquid,
    llama,
    llava,
    microsoft,
    minimax,
    mistral,
    openai,
    qwen,
    tencent,
    zhipu,
)
