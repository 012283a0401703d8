# @summary The system Apache as the node's frontend: the modules the routing rules need, the
# rules (`openshift-node apache-config`, again whenever node.conf changes) and the empty maps,
# and a virtual host that routes every host name of the node's gears.
# @api private
class openshift_node::apache {
  $routes = '/etc/apache2/openshift-node-routes.conf'
  $site = '/etc/apache2/sites-available/openshift-node.conf'

  ['rewrite', 'proxy', 'proxy_http', 'headers'].each |$module| {
    exec { "openshift-node a2enmod ${module}":
      command => ['/usr/sbin/a2enmod', '-q', $module],
      creates => "/etc/apache2/mods-enabled/${module}.load",
    }
  }
  $command = ['/usr/sbin/openshift-node', 'apache-config', '--output', $routes]
  exec { 'openshift-node apache-config':
    command => $command,
    creates => $routes,
  }
  exec { 'openshift-node apache-config refresh':
    command     => $command,
    refreshonly => true,
    subscribe   => File['/etc/openshift/node.conf'],
  }
  file { $site:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0644',
    content => epp('openshift_node/apache-site.conf.epp', {
      'server_name' => $openshift_node::public_hostname,
      'routes'      => $routes,
    }),
  }
  file { '/etc/apache2/sites-enabled/openshift-node.conf':
    ensure => link,
    target => '../sites-available/openshift-node.conf',
  }
  # Requests for the gears' host names reach the default virtual host: it must be the node's.
  file { '/etc/apache2/sites-enabled/000-default.conf':
    ensure => absent,
  }
}
