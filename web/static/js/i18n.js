// Words on the pages, in Simplified Chinese (default) and English.
// Pages carry the Chinese text in their HTML (so they read right before any
// script runs); elements marked data-i18n="key" are re-labelled from here
// when the visitor switches language. The choice is remembered per phone.

const STORE_KEY = 'fieldcast.lang';

const zh = {
  'brand': '田间直播',
  'nav.home': '田间直播 首页',
  'nav.lang': 'Language / 语言',
  'common.close': '关闭',
  'nav.studio': '我要开播',
  'common.loading': '加载中…',
  'common.back': '返回',
  'common.save': '保存',
  'common.copy': '复制',
  'common.copied': '已复制',
  'common.cancel': '取消',
  'common.ok': '确定',
  'common.saved': '已保存',
  'foot.home': '田间直播 · 农户自己卖好粮',
  'foot.tag': '田间直播 · 农户自己卖好粮',

  'state.scheduled': '即将开播',
  'state.live': '直播中',
  'state.ended': '已结束',

  'home.title': '从田里直播，把好粮直接卖给城里人',
  'home.text': '一部手机就能开直播：拍谷子地、讲种法，朋友点开链接就能看，没有中间商。',
  'home.cta': '我是农户，我要开播',
  'home.live': '正在直播',
  'home.none': '现在没有直播。农户开播后，这里会出现。',
  'home.how': '怎么开播',
  'home.step1': '用手机号注册',
  'home.step2': '开小店，写上村子和故事',
  'home.step3': '上架小米，写好价钱',
  'home.step4': '对着地里点“开始直播”',
  'home.step5': '把链接发给朋友',
  'home.watch': '去看',
  'home.hello': '您好，',

  'viewer.unmute': '点我开声音',
  'viewer.tap_play': '点我播放',
  'viewer.share': '分享给朋友',
  'viewer.share_short': '分享',
  'viewer.products_short': '好物',
  'viewer.shop': '农户小店',
  'viewer.products': '本店好物',
  'viewer.presale': '预售 · {date} 发货',
  'viewer.stock': '还剩 {n} 份',
  'viewer.soldout': '卖完了',
  'viewer.not_live': '还没开播',
  'viewer.starts_at': '开播时间：{time}',
  'viewer.starts_soon': '农户很快就来，页面会自己开始播放',
  'viewer.keep_checking': '不用刷新，开播了这里会自己出现画面',
  'viewer.connecting': '正在连接…',
  'viewer.reconnecting': '网络断了一下，正在重新连接…',
  'viewer.waiting_farmer': '农户那边信号不好，稍等一下…',
  'viewer.ended': '直播已结束',
  'viewer.ended_text': '谢谢观看！农户下次开播，会发新的链接。',
  'viewer.next_live': '这家小店正在直播另一场，去看',
  'viewer.watch_replay': '看这场直播的回放',
  'viewer.next_at': '下一场：{time}',
  'viewer.audio_only': '网速慢，先听声音',
  'viewer.slow': '画面卡了，正在恢复…',
  'viewer.full': '看的人太多了，稍后自动重试',
  'viewer.codec': '这部手机放不了这个直播的画面，换个浏览器试试',
  'viewer.wechat_hint': '也可以点右上角 ··· 发送给朋友',

  'share.copied': '链接已复制，去微信里粘贴发给朋友',
  'share.copy_failed': '复制不了，请长按这个链接复制：',
  'share.text': '我在看「{shop}」的田间直播：{title}',

  'nf.title': '找不到这个直播',
  'nf.text': '链接可能抄错了，或者直播已经删掉了。问问发链接给你的朋友吧。',
  'nf.home': '看看正在直播的',
  'err.title': '出了点问题',
  'err.text': '服务器暂时忙不过来，请过一会儿再刷新。',
  'err.retry': '刷新',

  'auth.title': '农户工作台',
  'auth.text': '用手机号登录，开店、上架、开直播都在这里。',
  'auth.signin': '登录',
  'auth.signup': '注册',
  'auth.signup_go': '注册并登录',
  'auth.signout': '退出',
  'f.mobile': '手机号',
  'f.password': '密码',
  'f.new_password': '设个密码（至少 8 位）',
  'f.display_name': '怎么称呼您',
  'f.display_name_ph': '例如：王大姐',
  'f.shop_name': '店名',
  'f.shop_name_ph': '例如：王家沟羊粪小米',
  'f.place': '村子 / 县',
  'f.place_ph': '例如：山西 岢岚县 王家沟村',
  'f.story': '您的故事（可不填）',
  'f.story_ph': '怎么种的？为什么好吃？',
  'f.payment_note': '转账收款方式（可不填）',
  'f.payment_note_ph': '例如：微信号 wangdajie；农行卡 6228…（户名 王某）。请备注订单号。',
  'f.payment_note_hint': '选了转账的买家下单后会看到这段话。',
  'f.title': '商品名',
  'f.title_ph': '例如：羊粪小米 20斤装',
  'f.price': '价钱（元）',
  'f.unit': '每份是',
  'f.unit_ph': '20斤袋',
  'f.stock': '有多少份（库存）',
  'f.presale': '预售（还没收，收了再发货）',
  'f.ships_on': '预计发货日期',
  'f.description': '介绍（可不填）',
  'f.description_ph': '产地、口感、怎么吃',
  'f.product_photo': '商品照片（可不填）',
  'f.shop_photo': '小店照片（可不填）',
  'photo.pick': '拍照或选照片',
  'photo.change': '换一张',
  'photo.hint': '买家在直播间和商品列表里会看到。照片里的位置信息会去掉。',
  'e.photo_too_large': '照片太大了，换一张小一点的',
  'e.payload_too_large': '照片太大了，换一张小一点的',
  'e.unsupported_photo_type': '只能用 JPG、PNG 或 WebP 照片',
  'e.unsupported_media_type': '只能用 JPG、PNG 或 WebP 照片',
  'e.photo_unreadable': '这张照片打不开，可能坏了，换一张试试',
  'e.photo_too_many_pixels': '这张照片太大了，换一张小一点的',
  'f.bc_title': '直播标题',
  'f.bc_title_ph': '例如：谷子收割第一天',
  'f.scheduled_at': '什么时候开播（可不填）',

  'shop.pick': '选择小店',
  'shop.mine': '我的小店',
  'shop.edit': '改小店',
  'shop.new_title': '开一个小店',
  'shop.new_hint': '买家会看到店名、村子和您的故事。',
  'shop.edit_title': '改小店',
  'shop.edit_hint': '改完点保存，买家马上能看到。',

  'bc.title': '直播',
  'bc.new': '新直播',
  'bc.none': '还没有直播。点“新直播”定个时间。',
  'bc.new_title': '新直播',
  'bc.create': '定下来',
  'bc.no_time': '没定时间',
  'bc.go': '去开播',

  'pr.title': '商品',
  'pr.new': '上架',
  'pr.none': '还没有商品。点“上架”把小米放上来。',
  'pr.new_title': '上架商品',
  'pr.edit_title': '改商品',
  'pr.remove': '下架这个商品',
  'pr.remove_q': '确定下架“{title}”吗？买家就看不到了。',
  'pr.removed': '已下架',
  'pr.stock': '库存 {n}',
  'pr.presale': '预售 {date}',
  'pr.per': '/ {unit}',

  'cam.off': '点下面的按钮打开相机',
  'cam.on': '打开相机',
  'cam.opening': '正在打开相机…',
  'cam.go': '开始直播',
  'cam.connecting': '正在连上服务器…',
  'cam.onair': '正在直播',
  'cam.end': '结束直播',
  'cam.flip': '换镜头',
  'cam.end_q': '确定结束直播吗？结束后这场直播就不能再开了。',
  'cam.ended': '这场直播已经结束了。想再播，回去点“新直播”。',
  'cam.ended_away': '断网太久，这场直播已经结束了。回去点“新直播”再开一场。',
  'cam.denied': '相机或话筒没有打开。点地址栏左边的小锁 → 权限 → 允许相机和麦克风，再点一次“打开相机”。用微信打开的，点右上角 ··· 选“在浏览器打开”。',
  'cam.denied_wechat': '微信里打不开相机：点右上角 ··· 选“在浏览器打开”，在手机浏览器里开播。',
  'cam.denied_ios': '相机没有打开。请打开 设置 → Safari 浏览器 → 相机 和 麦克风，选“允许”，再回来点一次。',
  'cam.busy': '相机被别的应用占着（微信视频、相机等）。关掉那个应用，再点一次。',
  'cam.lost': '相机停了，可能被别的应用（微信视频、相机）占用了。关掉那个应用，再点“重新打开相机”。',
  'cam.lost_live': '相机停了，可能被别的应用（微信视频、相机）占用了。直播没有断：观众现在看到“相机暂停”的画面。关掉那个应用，再点“重新打开相机”。',
  'cam.retry': '重新打开相机',
  'cam.back': '相机回来了',
  'cam.back_live': '相机回来了，观众又能看到画面了',
  'cam.replaced': '另一台设备接管了这场直播，这台手机已经停止推流。观众现在看的是那台设备的画面。',
  'cam.take_over': '在这台手机上继续直播',
  'cam.none': '这部手机找不到相机。',
  'cam.insecure': '相机要用 https 网址才能打开，请联系管理员。',
  'cam.unsupported': '这个浏览器不能直播，请用手机自带浏览器或 Chrome 打开。',
  'cam.reconnecting': '网络断了，正在重新连接…（别关页面）',
  'cam.leave_q': '正在直播，离开这个页面直播就会中断。确定离开吗？',
  'q.good': '信号好',
  'q.fair': '信号一般',
  'q.poor': '信号差',
  'q.detail': '上传 {kbps} kbps · 延迟 {rtt} ms · 丢包 {loss}%',

  'live.share_title': '发给朋友看',
  'live.open': '看看效果',
  'apps.title': '用 OBS / Larix 等软件直播',
  'apps.text': '这两项像钥匙，只给自己用，不要发给别人。',
  'apps.url': '服务器地址（WHIP）',
  'apps.key': '推流密钥（Bearer Token）',
  'apps.show': '显示',
  'apps.hide': '隐藏',
  'apps.rotate': '换一个新密钥',
  'apps.rotate_q': '换新密钥后，旧密钥马上失效，软件里要填新的。确定换吗？',
  'apps.rotated': '已换成新密钥',
  'apps.obs': ['设置 → 直播 → 服务选 “WHIP”', '服务器填上面的地址，Bearer Token 填密钥', '输出 → 编码器 x264，配置 baseline，关键帧间隔 2 秒，码率 1500–2500', '点“开始推流”'],
  'apps.larix': ['设置 → 连接 → 新建', '地址填上面的服务器地址，模式选 WebRTC / WHIP，Token 填密钥', '视频：H.264，720p，码率 1.5–2.5 Mbit/s', '回到主屏，点红色按钮开播'],

  // Every code the server sends (api::ProblemCode, domain::FieldCode) has
  // words here, not in a feature's module, so every page can say it.
  'e.required': '这一项要填',
  'e.too_short': '太短了，至少 {n} 个字',
  'e.too_long': '太长了，最多 {n} 个字',
  'e.invalid_mobile': '手机号不对，应该是 11 位数字',
  'e.too_small': '数太小了',
  'e.too_large': '数太大了',
  'e.invalid_date': '日期不对',
  'e.invalid_time': '时间不对',
  'e.price': '请写价钱，例如 168 或 168.50',
  'e.stock': '库存要写整数，例如 300',
  'e.mobile_taken': '这个手机号已经注册过了，请直接登录',
  'e.wrong_credentials': '手机号或密码不对',
  'e.rate_limited': '试错太多次了，请过一会儿再试',
  'e.busy': '服务器正忙，请等几秒再试',
  'e.network': '网络不通，请检查信号后再试',
  'e.forbidden': '只有店主才能这样做',
  'e.unauthenticated': '请先登录',
  'e.nickname_required': '起个昵称就能下单，不用注册',
  'e.not_found': '找不到了，可能已经删掉',
  'e.broadcast_ended': '这场直播已经结束了',
  'e.generic': '出错了，请再试一次',
  'e.reservation_expired': '留货时间已过，商品已放回去了',
  'e.reservation_cancelled': '这次抢购已经取消了',
  'e.reservation_confirmed': '这个订单已经提交过了',
  'e.invalid_choice': '请选一项',
  'e.not_in_shop': '请选一个本店的商品',
  'e.exceeds_stock': '库存不够：最多 {n}',
  'e.out_of_range': '数不对',
  'e.in_the_past': '时间已经过了',
  'e.before_start': '要晚于开抢时间',
  'e.no_such_account': '这个手机号还没注册。请对方先注册，再来设置',
  'e.is_owner': '这是您自己的手机号',
  'e.already_moderator': '已经是管理员了',
  'e.invalid_order_transition': '订单现在的状态不能这样改，请刷新看看',
  'e.invalid_tracking_number': '单号只能是字母、数字或横线，最多 40 位',
  'e.validation_failed': '有几项没填对，请看一下',
  'e.invalid_body': '页面发来的内容读不懂，请刷新后再试',
  'e.malformed_json': '页面发来的内容读不懂，请刷新后再试',
  'e.invalid_path': '链接不对，请检查一下',
  'e.invalid_query': '链接不对，请检查一下',
  'e.bad_cursor': '聊天记录加载不了，请刷新页面',
  'e.websocket_required': '这个浏览器连不上直播间，请换个浏览器试试',
  'e.origin_required': '请求被拦下了，请刷新页面再试',
  'e.cross_site_request': '请求来自别的网站，被拦下了。请直接打开本站再试',
  'e.wrong_stream_key': '推流密钥不对，请在工作台重新复制（可能已经换了新密钥）',
  'e.already_signed_in': '您已经登录了，聊天用的是账号名字',
  'e.already_exists': '已经有了，不用再建',
  'e.sold_out': '卖完了。有人没付款的话会放回来，过一会儿再试',
  'e.insufficient_stock': '只剩 {n} 份了，少买几份试试',
  'e.limit_reached': '每人最多买 {limit} 份，您已经有 {already} 份了',
  'e.account_required': '这个商品要用手机号登录后才能买',
  'e.banned': '这家小店不让您在直播间聊天和购买了',
  'e.not_started': '还没开抢，等倒计时结束',
  'e.offer_ended': '这个商品已经停止销售了',
  'e.idempotency_key_reused': '这次下单和刚才的不一样，请刷新后重新下单',
  'e.bad_sdp': '视频连接出错了，请刷新再试',
  'e.sdp_too_complex': '视频连接出错了，请刷新再试',
  'e.unsupported_codecs': '这部手机放不了这个直播的画面，换个浏览器试试',
  'e.room_full': '看的人太多了，请稍后再试',
  'e.too_many_pending': '正在连接的人太多了，请等几秒',
  'e.room_busy': '正在连接的人太多了，请等几秒',
  'e.no_publisher': '还没开播',
  'e.unknown_session': '视频连接已经断了，请刷新再试',
  'e.too_many_sessions': '服务器满了，请稍后再试',
  'e.bad_trickle': '视频连接出错了，请刷新再试',
  'e.etag_mismatch': '视频连接出错了，请刷新再试',
  'e.ice_restart_unsupported': '视频连接出错了，请刷新再试',
  'e.shutting_down': '服务器正在重启，请过一会儿再试',
  'e.unavailable': '服务器忙，请再试一次',
  'e.internal': '服务器出错了，请再试一次',
  'e.blank': '不能只有空格，请写几个字',
  'e.invalid_id': '链接或编号不对',
  'e.invalid_idempotency_key': '页面出错了，请刷新后再试',
};

const en = {
  'brand': 'fieldcast',
  'nav.home': 'fieldcast home',
  'nav.lang': 'Language / 语言',
  'common.close': 'Close',
  'nav.studio': 'Go live',
  'common.loading': 'Loading…',
  'common.back': 'Back',
  'common.save': 'Save',
  'common.copy': 'Copy',
  'common.copied': 'Copied',
  'common.cancel': 'Cancel',
  'common.ok': 'OK',
  'common.saved': 'Saved',
  'foot.home': 'fieldcast · farmers sell their own harvest',
  'foot.tag': 'fieldcast · farmers sell their own harvest',

  'state.scheduled': 'Coming up',
  'state.live': 'Live',
  'state.ended': 'Ended',

  'home.title': 'Live from the field, sold straight to your table',
  'home.text': 'One phone is all a farmer needs: film the millet, tell how it is grown, and friends who open the link watch and buy. No middlemen.',
  'home.cta': 'I am a farmer: go live',
  'home.live': 'Live now',
  'home.none': 'Nobody is live right now. Broadcasts appear here when a farmer goes live.',
  'home.how': 'How to go live',
  'home.step1': 'Sign up with your mobile number',
  'home.step2': 'Open a shop: village and story',
  'home.step3': 'List your millet with a price',
  'home.step4': 'Point at the field, tap “Go live”',
  'home.step5': 'Send the link to friends',
  'home.watch': 'Watch',
  'home.hello': 'Hello, ',

  'viewer.unmute': 'Tap for sound',
  'viewer.tap_play': 'Tap to play',
  'viewer.share': 'Share with friends',
  'viewer.share_short': 'Share',
  'viewer.products_short': 'Shop',
  'viewer.shop': 'Farm shop',
  'viewer.products': 'From this farm',
  'viewer.presale': 'Presale · ships {date}',
  'viewer.stock': '{n} left',
  'viewer.soldout': 'Sold out',
  'viewer.not_live': 'Not live yet',
  'viewer.starts_at': 'Starts {time}',
  'viewer.starts_soon': 'The farmer will be here soon; the video starts by itself',
  'viewer.keep_checking': 'No need to refresh: the video appears here when it starts',
  'viewer.connecting': 'Connecting…',
  'viewer.reconnecting': 'Connection dropped, reconnecting…',
  'viewer.waiting_farmer': 'The farmer’s signal is weak, please wait…',
  'viewer.ended': 'This broadcast has ended',
  'viewer.ended_text': 'Thanks for watching! The farmer will share a new link next time.',
  'viewer.next_live': 'This farm is live in another broadcast: watch',
  'viewer.watch_replay': 'Watch the replay of this broadcast',
  'viewer.next_at': 'Next: {time}',
  'viewer.audio_only': 'Slow network: sound only for now',
  'viewer.slow': 'Video stalled, recovering…',
  'viewer.full': 'Too many viewers right now; retrying shortly',
  'viewer.codec': 'This phone cannot play this video; try another browser',
  'viewer.wechat_hint': 'Or tap ··· at the top right to send it',

  'share.copied': 'Link copied: paste it into a chat',
  'share.copy_failed': 'Could not copy. Press and hold the link to copy it:',
  'share.text': 'Watching {shop} live from the field: {title}',

  'nf.title': 'Broadcast not found',
  'nf.text': 'The link may be mistyped, or the broadcast was removed. Ask the friend who sent it.',
  'nf.home': 'See who is live',
  'err.title': 'Something went wrong',
  'err.text': 'The server is busy. Please refresh in a moment.',
  'err.retry': 'Refresh',

  'auth.title': 'Farmer’s studio',
  'auth.text': 'Sign in with your mobile number to run your shop and go live.',
  'auth.signin': 'Sign in',
  'auth.signup': 'Sign up',
  'auth.signup_go': 'Sign up',
  'auth.signout': 'Sign out',
  'f.mobile': 'Mobile number',
  'f.password': 'Password',
  'f.new_password': 'Choose a password (8+ characters)',
  'f.display_name': 'Your name',
  'f.display_name_ph': 'e.g. Wang',
  'f.shop_name': 'Shop name',
  'f.shop_name_ph': 'e.g. Wangjiagou Millet',
  'f.place': 'Village / county',
  'f.place_ph': 'e.g. Wangjiagou, Kelan, Shanxi',
  'f.story': 'Your story (optional)',
  'f.story_ph': 'How do you grow it? Why is it good?',
  'f.payment_note': 'How to pay you by transfer (optional)',
  'f.payment_note_ph': 'e.g. WeChat ID wangdajie; bank card 6228… (name Wang). Please note the order number.',
  'f.payment_note_hint': 'Buyers who choose transfer see this after ordering.',
  'f.title': 'Product name',
  'f.title_ph': 'e.g. Millet, 20 jin bag',
  'f.price': 'Price (yuan)',
  'f.unit': 'Sold per',
  'f.unit_ph': '20-jin bag',
  'f.stock': 'How many (stock)',
  'f.presale': 'Presale (ships after harvest)',
  'f.ships_on': 'Expected ship date',
  'f.description': 'Description (optional)',
  'f.description_ph': 'Where, taste, how to cook',
  'f.product_photo': 'Product photo (optional)',
  'f.shop_photo': 'Shop photo (optional)',
  'photo.pick': 'Take or choose a photo',
  'photo.change': 'Change',
  'photo.hint': 'Buyers see it in the broadcast and the product list. Location data is removed from the photo.',
  'e.photo_too_large': 'That photo is too large; choose a smaller one',
  'e.payload_too_large': 'That photo is too large; choose a smaller one',
  'e.unsupported_photo_type': 'Use a JPG, PNG or WebP photo',
  'e.unsupported_media_type': 'Use a JPG, PNG or WebP photo',
  'e.photo_unreadable': 'That photo cannot be opened; it may be damaged. Try another',
  'e.photo_too_many_pixels': 'That photo is too large; choose a smaller one',
  'f.bc_title': 'Broadcast title',
  'f.bc_title_ph': 'e.g. First day of the harvest',
  'f.scheduled_at': 'When (optional)',

  'shop.pick': 'Shop',
  'shop.mine': 'My shop',
  'shop.edit': 'Edit shop',
  'shop.new_title': 'Open your shop',
  'shop.new_hint': 'Buyers see the name, your village and your story.',
  'shop.edit_title': 'Edit shop',
  'shop.edit_hint': 'Buyers see the changes as soon as you save.',

  'bc.title': 'Broadcasts',
  'bc.new': 'New',
  'bc.none': 'No broadcasts yet. Tap “New” to plan one.',
  'bc.new_title': 'New broadcast',
  'bc.create': 'Create',
  'bc.no_time': 'No time set',
  'bc.go': 'Go live',

  'pr.title': 'Products',
  'pr.new': 'Add',
  'pr.none': 'No products yet. Tap “Add” to list your millet.',
  'pr.new_title': 'Add a product',
  'pr.edit_title': 'Edit product',
  'pr.remove': 'Remove this product',
  'pr.remove_q': 'Remove “{title}”? Buyers will no longer see it.',
  'pr.removed': 'Removed',
  'pr.stock': 'Stock {n}',
  'pr.presale': 'Presale {date}',
  'pr.per': '/ {unit}',

  'cam.off': 'Tap the button below to open the camera',
  'cam.on': 'Open camera',
  'cam.opening': 'Opening the camera…',
  'cam.go': 'Go live',
  'cam.connecting': 'Connecting to the server…',
  'cam.onair': 'Live',
  'cam.end': 'End broadcast',
  'cam.flip': 'Flip',
  'cam.end_q': 'End the broadcast? It cannot be restarted afterwards.',
  'cam.ended': 'This broadcast has ended. To stream again, create a new one.',
  'cam.ended_away': 'The connection was gone too long and the broadcast ended. Create a new one to go live again.',
  'cam.denied': 'Camera or microphone blocked. Tap the lock left of the address → Permissions → allow camera and microphone, then tap “Open camera” again. Opened in WeChat? Tap ··· at the top right and choose “Open in browser”.',
  'cam.denied_wechat': 'WeChat cannot open the camera: tap ··· at the top right, choose “Open in browser”, and go live from the phone’s browser.',
  'cam.denied_ios': 'Camera blocked. Open Settings → Safari → Camera and Microphone, choose “Allow”, then come back and tap again.',
  'cam.busy': 'Another app is using the camera (a WeChat call, the camera app). Close it, then tap again.',
  'cam.lost': 'The camera stopped: another app (a WeChat call, the camera app) may have taken it. Close that app, then tap “Reopen camera”.',
  'cam.lost_live': 'The camera stopped: another app (a WeChat call, the camera app) may have taken it. You are still live: viewers see a “camera paused” picture. Close that app, then tap “Reopen camera”.',
  'cam.retry': 'Reopen camera',
  'cam.back': 'The camera is back',
  'cam.back_live': 'The camera is back: viewers see you again',
  'cam.replaced': 'Another device took over this broadcast; this phone stopped streaming. Viewers now watch the other device.',
  'cam.take_over': 'Continue live on this phone',
  'cam.none': 'No camera found on this phone.',
  'cam.insecure': 'The camera needs an https address; ask your administrator.',
  'cam.unsupported': 'This browser cannot stream. Open the page in Chrome or the phone’s own browser.',
  'cam.reconnecting': 'Connection lost, reconnecting… (keep this page open)',
  'cam.leave_q': 'You are live. Leaving this page stops the stream. Leave anyway?',
  'q.good': 'Good signal',
  'q.fair': 'Fair signal',
  'q.poor': 'Poor signal',
  'q.detail': 'Upload {kbps} kbps · delay {rtt} ms · loss {loss}%',

  'live.share_title': 'Send to friends',
  'live.open': 'Preview',
  'apps.title': 'Stream with OBS, Larix or another app',
  'apps.text': 'These two work like a key: keep them to yourself.',
  'apps.url': 'Server (WHIP URL)',
  'apps.key': 'Stream key (Bearer token)',
  'apps.show': 'Show',
  'apps.hide': 'Hide',
  'apps.rotate': 'Make a new key',
  'apps.rotate_q': 'The old key stops working at once; apps need the new one. Continue?',
  'apps.rotated': 'New key ready',
  'apps.obs': ['Settings → Stream → Service: “WHIP”', 'Server: the address above; Bearer Token: the key', 'Output → encoder x264, profile baseline, keyframe interval 2 s, 1500–2500 kbps', 'Click “Start Streaming”'],
  'apps.larix': ['Settings → Connections → New', 'URL: the server address above, mode WebRTC / WHIP, token: the key', 'Video: H.264, 720p, 1.5–2.5 Mbit/s', 'Back on the main screen, tap the red button'],

  // Every code the server sends (api::ProblemCode, domain::FieldCode) has
  // words here (see the Chinese above).
  'e.required': 'Please fill this in',
  'e.too_short': 'Too short: at least {n} characters',
  'e.too_long': 'Too long: at most {n} characters',
  'e.invalid_mobile': 'Not a mobile number (11 digits, or + and country code)',
  'e.too_small': 'Too small',
  'e.too_large': 'Too large',
  'e.invalid_date': 'Not a valid date',
  'e.invalid_time': 'Not a valid time',
  'e.price': 'Enter a price such as 168 or 168.50',
  'e.stock': 'Stock is a whole number, such as 300',
  'e.mobile_taken': 'This number already has an account: sign in instead',
  'e.wrong_credentials': 'Wrong mobile number or password',
  'e.rate_limited': 'Too many tries; please wait a while',
  'e.busy': 'The server is busy; try again in a few seconds',
  'e.network': 'No connection; check the signal and try again',
  'e.forbidden': 'Only the shop owner can do this',
  'e.unauthenticated': 'Please sign in first',
  'e.nickname_required': 'Pick a nickname to buy; no account needed',
  'e.not_found': 'Not found; it may have been removed',
  'e.broadcast_ended': 'This broadcast has ended',
  'e.generic': 'Something went wrong; please try again',
  'e.reservation_expired': 'The hold ran out and the units went back on sale',
  'e.reservation_cancelled': 'This reservation was cancelled',
  'e.reservation_confirmed': 'This order was already placed',
  'e.invalid_choice': 'Please choose one',
  'e.not_in_shop': 'Choose one of this shop’s products',
  'e.exceeds_stock': 'Not enough stock: at most {n}',
  'e.out_of_range': 'Out of range',
  'e.in_the_past': 'That time has passed',
  'e.before_start': 'Must be after the opening time',
  'e.no_such_account': 'No account uses this number. Ask them to sign up first',
  'e.is_owner': 'That is your own number',
  'e.already_moderator': 'Already a moderator',
  'e.invalid_order_transition': 'The order cannot change that way now; refresh to see where it stands',
  'e.invalid_tracking_number': 'Letters, digits or dashes, at most 40',
  'e.validation_failed': 'Some fields need another look',
  'e.invalid_body': 'The server could not read what the page sent; refresh and try again',
  'e.malformed_json': 'The server could not read what the page sent; refresh and try again',
  'e.invalid_path': 'That link is not right; check it',
  'e.invalid_query': 'That link is not right; check it',
  'e.bad_cursor': 'The chat history could not load; refresh the page',
  'e.websocket_required': 'This browser cannot connect to the live room; try another browser',
  'e.origin_required': 'The request was blocked; refresh the page and try again',
  'e.cross_site_request': 'The request came from another site and was refused; open this site directly and try again',
  'e.wrong_stream_key': 'Wrong stream key: copy it again from the studio (it may have been replaced)',
  'e.already_signed_in': 'You are signed in; chat uses your account name',
  'e.already_exists': 'That already exists',
  'e.sold_out': 'Sold out. Units come back if buyers do not pay: try again later',
  'e.insufficient_stock': 'Only {n} left: try fewer',
  'e.limit_reached': 'At most {limit} per buyer, and you already have {already}',
  'e.account_required': 'This product is for buyers signed in with their mobile number',
  'e.banned': 'This shop has banned you from chatting and buying in its broadcasts',
  'e.not_started': 'Not open yet: wait for the countdown',
  'e.offer_ended': 'This product is no longer on sale',
  'e.idempotency_key_reused': 'This order differs from the one just tapped; refresh and order again',
  'e.bad_sdp': 'The video connection failed; refresh and try again',
  'e.sdp_too_complex': 'The video connection failed; refresh and try again',
  'e.unsupported_codecs': 'This phone cannot play this video; try another browser',
  'e.room_full': 'Too many viewers right now; try again later',
  'e.too_many_pending': 'Many people are connecting; wait a few seconds',
  'e.room_busy': 'Many people are connecting; wait a few seconds',
  'e.no_publisher': 'Not live yet',
  'e.unknown_session': 'The video connection has ended; refresh and try again',
  'e.too_many_sessions': 'The server is full right now; try again later',
  'e.bad_trickle': 'The video connection failed; refresh and try again',
  'e.etag_mismatch': 'The video connection failed; refresh and try again',
  'e.ice_restart_unsupported': 'The video connection failed; refresh and try again',
  'e.shutting_down': 'The server is restarting; try again in a moment',
  'e.unavailable': 'The server is busy; please try again',
  'e.internal': 'Something went wrong on the server; please try again',
  'e.blank': 'Write something visible, not just spaces',
  'e.invalid_id': 'That link or number is not right',
  'e.invalid_idempotency_key': 'The page made a mistake; refresh and try again',
};

const dictionaries = { zh, en };

/**
 * Adds a feature's words (e.g. the live channel's). Modules call this when
 * they load, so a page only downloads the words it uses.
 */
export function extend(moreZh, moreEn) {
  Object.assign(zh, moreZh);
  Object.assign(en, moreEn);
}

export function lang() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved === 'en' || saved === 'zh') return saved;
  } catch (_) { /* storage blocked: default */ }
  return 'zh';
}

/**
 * The text for `key` in the current language, with {name} filled from vars.
 * With `vars.n === 1` a `key_one` entry wins where the language has one
 * ("1 order", not "1 orders").
 */
export function t(key, vars) {
  const d = dictionaries[lang()];
  const one = vars && Number(vars.n) === 1 ? d[`${key}_one`] : undefined;
  let text = one ?? d[key] ?? zh[key] ?? key;
  if (vars && typeof text === 'string') {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  }
  return text;
}

export function has(key) {
  return key in zh;
}

/** Every word of one language ('zh' or 'en'), for tests. */
export function dictionary(language) {
  return dictionaries[language];
}

export function locale() {
  return lang() === 'en' ? 'en' : 'zh-CN';
}

/** Re-labels every marked element under `root` in the current language. */
export function applyI18n(root = document) {
  document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
  root.querySelectorAll('[data-i18n]').forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  root.querySelectorAll('[data-i18n-placeholder]').forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  root.querySelectorAll('[data-i18n-aria]').forEach((el) => {
    el.setAttribute('aria-label', t(el.dataset.i18nAria));
  });
  root.querySelectorAll('[data-i18n-list]').forEach((el) => {
    const items = t(el.dataset.i18nList);
    if (!Array.isArray(items)) return;
    el.replaceChildren(...items.map((text) => {
      const li = document.createElement('li');
      li.textContent = text;
      return li;
    }));
  });
  const sw = document.getElementById('lang-switch');
  if (sw) sw.textContent = lang() === 'en' ? '中文' : 'EN';
}

export function setLang(next) {
  try { localStorage.setItem(STORE_KEY, next); } catch (_) { /* not remembered */ }
  applyI18n();
  document.dispatchEvent(new CustomEvent('langchange', { detail: next }));
}

export function initLangSwitch() {
  const sw = document.getElementById('lang-switch');
  if (sw) sw.addEventListener('click', () => setLang(lang() === 'en' ? 'zh' : 'en'));
  if (lang() !== 'zh') applyI18n();
  else document.documentElement.lang = 'zh-CN';
}

/** "10月8日 周四 14:30" / "Thu, Oct 8, 14:30" in the phone's time zone. */
export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(locale(), {
    month: 'short', day: 'numeric', weekday: 'short', hour: '2-digit', minute: '2-digit', hour12: false,
  }).format(d);
}

export function formatDate(ymd) {
  const d = new Date(`${ymd}T00:00:00`);
  if (Number.isNaN(d.getTime())) return ymd;
  return new Intl.DateTimeFormat(locale(), { month: 'short', day: 'numeric' }).format(d);
}

/**
 * A count with its unit: "3 袋". A unit that starts with a number ("20斤袋",
 * "5kg") glued to a count reads as another number ("3 20斤袋"), so then the
 * count stands alone ("3 份", English "3"); the unit shows with the price.
 */
export function amount(n, unit, language = lang()) {
  const u = String(unit || '').trim();
  if (!u || /^[0-9０-９.]/.test(u)) return language === 'en' ? String(n) : `${n} 份`;
  return `${n} ${u}`;
}

/**
 * The short number people quote when paying ("794VVK"): the server's
 * `number` where it sends one, else the same derivation from the id.
 */
export function orderNumber(order) {
  if (order && order.number) return String(order.number);
  const id = String((order && order.id) || '');
  return id.slice(-6).toUpperCase();
}

/** ¥168 or ¥168.50 from integer fen (never floats for money). */
export function yuan(fen) {
  const whole = Math.trunc(fen / 100);
  const cents = Math.abs(fen % 100);
  return cents === 0 ? `¥${whole}` : `¥${whole}.${String(cents).padStart(2, '0')}`;
}
