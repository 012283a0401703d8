# One ActiveMQ broker of the MCollective pool (STOMP).
type Openshift_node::Broker = Struct[{
  host               => Pattern[/\A[A-Za-z0-9.:-]+\z/],
  Optional[port]     => Integer[1, 65535],
  Optional[user]     => Pattern[/\A[^\s]+\z/],
  Optional[password] => Pattern[/\A[^\s]+\z/],
}]
