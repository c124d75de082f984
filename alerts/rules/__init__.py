"""Alert rules: schemas, the rule files and engine, and one evaluator per rule type."""
