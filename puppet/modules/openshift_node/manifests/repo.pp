# @summary The apt source of the node's packages, signed by its own key.
# @api private
class openshift_node::repo {
  $key_file = '/etc/apt/keyrings/openshift-node.asc'
  $list_file = '/etc/apt/sources.list.d/openshift-node.list'

  if $openshift_node::apt_url != undef {
    file { '/etc/apt/keyrings':
      ensure => directory,
      owner  => 'root',
      group  => 'root',
      mode   => '0755',
    }
    file { $key_file:
      ensure  => file,
      owner   => 'root',
      group   => 'root',
      mode    => '0644',
      content => $openshift_node::apt_key,
    }
    file { $list_file:
      ensure  => file,
      owner   => 'root',
      group   => 'root',
      mode    => '0644',
      content => epp('openshift_node/openshift-node.list.epp', {
        'url'       => $openshift_node::apt_url,
        'suite'     => $openshift_node::apt_suite,
        'component' => $openshift_node::apt_component,
        'key_file'  => $key_file,
      }),
      require => File[$key_file],
    }
    # Only this source is refreshed: the machine's other sources are not this module's business.
    exec { 'openshift-node apt update':
      command     => ['/usr/bin/apt-get', 'update', '-q', "-oDir::Etc::sourcelist=${list_file}",
                      '-oDir::Etc::sourceparts=-', '-oAPT::Get::List-Cleanup=0'],
      refreshonly => true,
      subscribe   => [File[$key_file], File[$list_file]],
      logoutput   => on_failure,
    }
  }
}
