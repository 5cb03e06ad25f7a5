"""cairn-evals: the built-in evaluators of cairn.

Deterministic (exact, includes, regex, numeric, token_f1, edit_distance,
rouge_l, json_valid, json_schema, json_diff, latency, cost), embedding
(embedding_similarity, through the configured embedding provider) and
model-graded (rubric, factuality, through the configured LLM provider).
Registered through ``cairn_register_evaluators``; see README.md.
"""
