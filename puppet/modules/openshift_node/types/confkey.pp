# A node.conf key: upper case letters, digits and underscores.
type Openshift_node::Confkey = Pattern[/\A[A-Z][A-Z0-9_]*\z/]
