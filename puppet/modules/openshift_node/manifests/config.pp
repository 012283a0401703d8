# @summary node.conf and the MCollective server.cfg the daemon's agent reads.
# @api private
class openshift_node::config {
  # Where the package puts the in-gear command and the gear shell.
  $packaged = {
    'GEAR_SHELL' => '/usr/bin/oo-trap-user',
    'GEAR_TOOL'  => '/usr/bin/gear',
  }
  $with_mcollective = !empty($openshift_node::mcollective_brokers)
  $base = {
    'PUBLIC_HOSTNAME'  => $openshift_node::public_hostname,
    'PUBLIC_IP'        => $openshift_node::public_ip,
    'CLOUD_DOMAIN'     => $openshift_node::cloud_domain,
    'BROKER_HOST'      => $openshift_node::broker_host,
    'AGENT_TRANSPORTS' => $with_mcollective ? { true => 'mcollective,local', default => 'local' },
  }
  file { '/etc/openshift/node.conf':
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0644',
    content => epp('openshift_node/node.conf.epp', { 'settings' => $packaged + $base + $openshift_node::settings }),
  }
  if $with_mcollective {
    file { '/etc/mcollective':
      ensure => directory,
      owner  => 'root',
      group  => 'root',
      mode   => '0755',
    }
    # The psk is a secret: readable by root only.
    file { '/etc/mcollective/server.cfg':
      ensure  => file,
      owner   => 'root',
      group   => 'root',
      mode    => '0600',
      content => epp('openshift_node/server.cfg.epp', {
        'identity' => $openshift_node::mcollective_identity,
        'psk'      => $openshift_node::mcollective_psk,
        'brokers'  => $openshift_node::mcollective_brokers,
      }),
    }
  }
}
