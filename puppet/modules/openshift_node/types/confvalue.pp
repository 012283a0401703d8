# A node.conf value, written double-quoted: no quote, backslash, control character or newline
# (the node expands nothing, but a value must not end its line or its quotes).
type Openshift_node::Confvalue = Pattern[/\A[^"\\\x00-\x1f\x7f]*\z/]
