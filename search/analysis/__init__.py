"""What a finished study says: views of its architectures (`view`), the evidence against seed
noise (`evidence`, with `multiplicity` for the error control over everything tested and
`confirmation` for the picks retrained on fresh seeds), placement rules (`rules`), position
importances (`importance`), the dashboard (`report`, `evidence_box`), the picked architecture
(`export`) and its model files (`deploy`). Reads the study; never runs the loop."""
