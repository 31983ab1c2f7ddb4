"""What a finished study says: views of its architectures (`view`), the evidence against seed
noise (`evidence`), placement rules (`rules`), the dashboard (`report`, `figures`), the picked
architecture (`export`) and its model files (`deploy`). Reads the study; never runs the loop."""
