"""The JSON of the server's routes, as pydantic models: FastAPI validates requests with them
(an unknown field is a 422 naming it) and documents them on /docs."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from seq2seq.data.tokenizer import check_encodable


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (conf/tools/serve.yaml's `limits` section)."""

    max_body_bytes: int
    max_chars: int
    max_texts: int
    max_beam: int
    max_nbest: int


def request_model(limits: Limits) -> type[BaseModel]:
    """The body of POST /translate, its bounds taken from `limits`."""
    class TranslateRequest(BaseModel):
        """One text or a list of texts, and the search options to change (others: the model's
        defaults, GET /info)."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"text": "Ein Hund läuft.", "beam": 5, "nbest": 2}]})

        text: str | list[str] = Field(
            description=f"a text, or a list of 1 to {limits.max_texts} texts, of at most "
                        f"{limits.max_chars} characters each")
        beam: int | None = Field(None, ge=1, le=limits.max_beam, description="beam size; 1 = greedy")
        nbest: int | None = Field(None, ge=1, le=limits.max_nbest,
                                  description="hypotheses returned per text")
        alpha: float | None = Field(None, ge=0, le=10, description="length penalty; 0 = off")
        coverage: float | None = Field(None, ge=0, le=10, description="coverage penalty; 0 = off")
        no_repeat_ngram_size: int | None = Field(None, ge=0, le=10,
                                                 description="forbid repeated n-grams; 0 = off")
        min_len: int | None = Field(None, ge=0, le=100, description="tokens before eos")
        max_len_a: float | None = Field(None, ge=0, le=10,
                                        description="at most max_len_a * |src| + max_len_b tokens")
        max_len_b: int | None = Field(None, ge=0, le=1000, description="see max_len_a")
        scores: bool = Field(False, description="return each hypothesis' score")
        attention: bool = Field(False, description="return each hypothesis' attention matrix "
                                                   "with source and target subword pieces")

        @field_validator("text", mode="before")
        @classmethod
        def _bounded(cls, v):
            """One clear message per mistake, instead of pydantic's one per union member."""
            texts = [v] if isinstance(v, str) else v
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("must be a string or a list of strings")
            if not texts:
                raise ValueError("the list is empty: send at least one text")
            if len(texts) > limits.max_texts:
                raise ValueError(f"{len(texts)} texts, more than the {limits.max_texts} a "
                                 "request may hold (limits.max_texts)")
            for i, t in enumerate(texts):
                if len(t) > limits.max_chars:
                    raise ValueError(f"text {i} has {len(t)} characters, more than "
                                     f"{limits.max_chars} (limits.max_chars)")
            check_encodable(texts)
            return v

    return TranslateRequest


class Attention(BaseModel):
    source: list[str] = Field(description="source subword pieces (with </s>)")
    target: list[str] = Field(description="output subword pieces (with </s> when produced)")
    weights: list[list[float]] = Field(description="[target step][source piece] weights")


class Hypothesis(BaseModel):
    text: str
    score: float | None = None
    attention: Attention | None = None


class Translation(BaseModel):
    text: str = Field(description="the best translation")
    nbest: list[Hypothesis] | None = Field(
        None, description="the n-best list, best first (when nbest > 1, scores or attention)")


class TranslateResponse(BaseModel):
    translations: list[Translation] = Field(description="one per input text, in input order")
