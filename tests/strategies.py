"""Hypothesis strategies shared by the tests of everything that parses."""

from __future__ import annotations

from hypothesis import strategies as st

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 1e308, 2**28, -(2**63)])
    | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
