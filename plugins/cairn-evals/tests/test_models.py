"""Model-based evaluators: judges against the fake OpenAI server, embeddings with cairn-local's hashing,
and every one of them skipped (with no call made) under the noop default."""

from __future__ import annotations

import pytest
from cairn_evals.models import CHOICES, parse_choice, parse_grade

from cairn.providers import AuthFailedError
from cairn.testing.fake_openai import EmbeddingReply, FakeOpenAI, Fault, Reply

QUESTION = "What is the capital of Australia?"


def openai_toml(server: FakeOpenAI, extra: str = "", key_env: str = "") -> str:
    return f"""
[cairn]
llm = "openai"
embeddings = "openai"

[llm.openai]
base_url = "{server.url}"
api_key_env = "{key_env}"
model = "gpt-4o-mini"

[embeddings.openai]
base_url = "{server.url}"
api_key_env = "{key_env}"
model = "text-embedding-3-small"
dimensions = 8
{extra}
"""


# -- reading verdicts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("Correct and concise.\nGRADE: 4", 4.0),
        ("The rubric asks for GRADE: <n>.\nIt is right.\nGRADE: 5", 5.0),  # the last one wins
        ("**Grade:** 3/5", 3.0),
        ("grade = [2] out of 5", 2.0),
        ("Score: 4", 4.0),
        ("Rating - 1", 1.0),
        ('{"reasoning": "fine", "grade": 5}', 5.0),
        ("Mostly right.\n4", 4.0),
        ("Mostly right.\n4/5", 4.0),
        ("GRADE: 3.5", 3.5),
    ],
)
def test_grades_are_read_robustly(reply, grade):
    assert parse_grade(reply, 5) == grade


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("I cannot grade this.", "no grade found"),
        ("GRADE: 7", "outside 1 to 5"),
        ("GRADE: 0", "outside 1 to 5"),
        ("GRADE: 8/10", "graded out of 10"),
        ("", "no grade found"),
    ],
)
def test_unreadable_or_out_of_range_grades_say_why(reply, problem):
    assert problem in parse_grade(reply, 5)


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("They agree.\nANSWER: C", "C"),
        ("Options (A) to (E) considered.\nAnswer: (d)", "D"),
        ("**Choice:** B", "B"),
        ("Different but fine.\nE", "E"),
        ("(A)", "A"),
        ("No idea.", None),
        ("ANSWER: F", None),
    ],
)
def test_factuality_choices(reply, letter):
    assert parse_choice(reply) == letter


# -- judges ----------------------------------------------------------------------------------


def test_a_rubric_grade_becomes_a_score_with_the_prompt_reply_usage_and_cost(make_scorer, fake_openai):
    scorer = make_scorer(openai_toml(fake_openai, '[evaluators.rubric]\nrubric = "Names the capital city only."\n'))
    fake_openai.script(Reply("Names Canberra and nothing else.\nGRADE: 4", model="gpt-4o-mini"))
    score = scorer("rubric", input=QUESTION, output="Canberra", expected="Canberra", context=["Canberra is ..."])
    assert (score.value, score.passed) == (0.75, True)
    assert score.reason == "Names Canberra and nothing else."
    assert score.metadata["grade"] == 4.0 and score.metadata["scale"] == 5 and score.metadata["model"] == "gpt-4o-mini"
    assert score.metadata["reply"] == "Names Canberra and nothing else.\nGRADE: 4"
    prompt = score.metadata["prompt"][1]["content"]
    for part in (
        "<input>\nWhat is the capital of Australia?\n</input>",
        "<response>\nCanberra\n</response>",
        "<reference>\nCanberra\n</reference>",
        "<rubric>\nNames the capital city only.\n</rubric>",
        "<context>\nCanberra is ...\n</context>",
        "GRADE: <n>",
        "to 5 (fully meets it)",
    ):
        assert part in prompt
    assert score.usage["input_tokens"] > 0 and score.usage["output_tokens"] == 7
    assert score.cost == pytest.approx((score.usage["input_tokens"] * 0.15 + 7 * 0.60) / 1e6)
    [sent] = fake_openai.calls("chat")
    body = sent.json
    assert body["messages"] == score.metadata["prompt"] and body["seed"] == 0 and "temperature" not in body
    assert body["model"] == "gpt-4o-mini" and "metadata" not in body  # the caller's metadata never leaves


def test_judge_settings_reach_the_request(make_scorer, fake_openai):
    scorer = make_scorer(openai_toml(fake_openai))
    fake_openai.script(Reply("Partly.\nGrade: 7/10"))
    score = scorer("rubric:scale=10,temperature=0,model=gpt-4.1-mini,threshold=0.5", output="x")
    assert score.value == pytest.approx(6 / 9) and score.passed
    body = fake_openai.calls("chat")[0].json
    assert (body["temperature"], body["model"]) == (0, "gpt-4.1-mini")
    assert "<reference>" not in body["messages"][1]["content"] and "<input>" not in body["messages"][1]["content"]


def test_an_unreadable_verdict_is_an_error_that_keeps_the_reply(make_scorer, fake_openai):
    scorer = make_scorer(openai_toml(fake_openai))
    fake_openai.script(Reply("It is fine, I suppose."), Reply("GRADE: 9"))
    first, second = scorer.many("rubric", [{"output": "a"}, {"output": "b"}])
    assert first.outcome == "error" and first.reason.startswith("no grade found in the judge's reply")
    assert first.metadata["reply"] == "It is fine, I suppose." and first.usage is not None
    assert second.reason == "the judge gave 9, outside 1 to 5"


def test_factuality_maps_the_choice_to_its_score(make_scorer, fake_openai):
    scorer = make_scorer(openai_toml(fake_openai))
    fake_openai.script(
        Reply("The submission says Sydney; the expert says Canberra.\nANSWER: D"),
        Reply("Same city.\nANSWER: C"),
        Reply("Adds the population, consistent.\nANSWER: B"),
    )
    scores = scorer.many(
        "factuality",
        [
            {"input": QUESTION, "output": "Sydney", "expected": "Canberra"},
            {"input": QUESTION, "output": "Canberra.", "expected": "Canberra"},
            {"input": QUESTION, "output": "Canberra, about 460,000 people", "expected": "Canberra"},
        ],
    )
    assert [(s.value, s.passed, s.metadata["choice"]) for s in scores] == [
        (0.0, False, "D"),
        (1.0, True, "C"),
        (0.6, True, "B"),
    ]
    assert scores[0].reason == "The submission says Sydney; the expert says Canberra."
    prompt = fake_openai.calls("chat")[0].json["messages"][1]["content"]
    assert "<expert_answer>\nCanberra\n</expert_answer>" in prompt and "<submitted_answer>\nSydney" in prompt
    assert all(f"({letter})" in prompt for letter in CHOICES) and prompt.rstrip().endswith("ANSWER: <letter>")


def test_a_provider_error_is_an_error_score_and_a_refused_key_stops_the_run(make_scorer, fake_openai, monkeypatch):
    scorer = make_scorer(openai_toml(fake_openai))
    fake_openai.script(Fault.openai(400, "bad request for this one"), Reply("GRADE: 5"))
    first, second = scorer.many("rubric", [{"output": "a"}, {"output": "b"}])
    assert first.outcome == "error" and first.reason.startswith("[invalid_request]")
    assert second.value == 1.0
    monkeypatch.setenv("CAIRN_EVALS_TEST_KEY", "sk-wrong-key-0000")
    fake_openai.api_key = "sk-right-key-1111"
    scorer = make_scorer(openai_toml(fake_openai, key_env="CAIRN_EVALS_TEST_KEY"))
    with pytest.raises(AuthFailedError):
        scorer.many("rubric", [{"output": "a"}, {"output": "b"}, {"output": "c"}])
    assert len(fake_openai.calls("chat")) == 3  # two above, then one refused: the run stopped there


def test_with_the_noop_default_judges_and_embeddings_are_skipped_without_a_call(make_scorer, fake_openai):
    scorer = make_scorer("")  # [cairn] llm and embeddings default to noop
    for spec in ("rubric", "factuality", "embedding_similarity"):
        score = scorer(spec, input=QUESTION, output="Canberra", expected="Canberra")
        assert score.outcome == "skipped" and score.reason.startswith("skipped: no ")
        assert "refuses every call" in score.reason and "docs/providers.md" in score.reason
    assert scorer.store.spend() == [] and fake_openai.requests == []


# -- embedding similarity --------------------------------------------------------------------


def test_embedding_similarity_with_the_offline_hashing_embedder(make_scorer):
    scorer = make_scorer('[cairn]\nembeddings = "hashing"\n')
    scores = scorer.many(
        "embedding_similarity",
        [
            {"output": "the capital of Australia is Canberra", "expected": "Canberra is the capital of Australia"},
            {"output": "Canberra", "expected": "Canberra"},
            {"output": "stock markets fell sharply on Monday", "expected": "a lemon cake recipe with eggs"},
            {"output": "", "expected": ""},
            {"output": "Wellington", "expected": ["Auckland", "Wellington"]},
            {"output": "", "expected": "text"},
        ],
    )
    values = [s.value for s in scores]
    assert values[1] == pytest.approx(1.0) and values[3] == 1.0 and values[4] == pytest.approx(1.0)
    assert 0.5 < values[0] < 1.0 and values[2] < 0.2 and values[5] == 0.0
    assert [s.passed for s in scores] == [values[0] >= 0.8, True, False, True, True, False]
    assert all(s.metadata["model"] for s in scores) and scores[0].metadata["cosine"] == pytest.approx(values[0])


def test_embeddings_are_batched_and_their_usage_and_cost_shared_out(make_scorer, fake_openai):
    scorer = make_scorer(openai_toml(fake_openai))
    samples = [
        {"output": f"answer number {i}", "expected": [f"reference {i}", "other"] if i % 2 else "ref"} for i in range(5)
    ]
    scores = scorer.many("embedding_similarity", samples)
    [call] = fake_openai.calls("embeddings")  # one request for the batch: 5 outputs and 7 references
    assert len(call.json["input"]) == 12
    total_tokens = sum(len(text.split()) for text in call.json["input"])  # the fake counts words
    assert sum(s.usage["input_tokens"] for s in scores) == total_tokens
    price = 0.02  # text-embedding-3-small, per million tokens
    assert sum(s.cost for s in scores) == pytest.approx(total_tokens * price / 1e6)
    assert scores[1].cost == pytest.approx(total_tokens * price / 1e6 * 3 / 12)  # three of the twelve texts
    assert all(0.0 <= s.value <= 1.0 for s in scores)


def test_a_failed_embedding_call_fails_its_batch(make_scorer, fake_openai):
    scorer = make_scorer(openai_toml(fake_openai))
    fake_openai.script(EmbeddingReply(vectors=[[1.0, 0.0]]), endpoint="embeddings")  # one vector for four texts
    scores = scorer.many("embedding_similarity", [{"output": "a", "expected": "b"}, {"output": "c", "expected": "d"}])
    assert [s.outcome for s in scores] == ["error", "error"] and "[provider_error]" in scores[0].reason
